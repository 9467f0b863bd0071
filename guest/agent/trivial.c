/* Trivial /init for the boot benchmark's lower bound: reached /init, so stop the VM at once
 * (QEMU runs with -no-reboot, so a reboot request ends the VM). */
#include <sys/reboot.h>
#include <unistd.h>

int main(void) {
    reboot(RB_AUTOBOOT);
    return 0;
}
