/* Wire format between the host shim and the guest agent over one virtio-serial port.
 * Every frame: 12-byte header (type, 3 pad bytes, u32 id, u32 len, little endian) then len payload bytes.
 * Kept in sync by hand with src/nanovisor/runtime/vm/protocol.py. */
#ifndef NV_PROTOCOL_H
#define NV_PROTOCOL_H
#include <stdint.h>

struct nv_hdr {
    uint8_t type;
    uint8_t pad[3];
    uint32_t id;
    uint32_t len;
} __attribute__((packed));

#define NV_MAX_PAYLOAD (1u << 20)

/* guest -> host */
#define NV_READY   'R' /* agent up; payload: kernel release */
#define NV_CREATED 'c' /* id: process; payload empty = ok, else error text */
#define NV_STDOUT  'O'
#define NV_STDERR  'e'
#define NV_EXIT    'x' /* payload: decimal wait status */
#define NV_REPLY   'r' /* reply to stats/ps; id echoes the request id */
#define NV_ALIVE   'h' /* sent after NV_HEARTBEAT_MS without traffic: the guest is alive */
#define NV_HEARTBEAT_MS 5000

/* host -> guest */
#define NV_CREATE  'C' /* id 0: main process; payload: key\0value\0 pairs */
#define NV_START   'G'
#define NV_EXEC    'X' /* id: new process id; payload like CREATE (process keys only) */
#define NV_STDIN   'I' /* len 0 = close stdin */
#define NV_KILL    'K' /* payload: "signal all" */
#define NV_RESIZE  'W' /* payload: "rows cols" */
#define NV_STATS   'S'
#define NV_PS      'P'

/* both ways */
#define NV_DNS     'D' /* a DNS message: a query the agent took on the guest's 127.0.0.11, or the answer */

#endif
