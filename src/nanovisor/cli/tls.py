"""`nanovisor tls init DIR`: certificates for `serve --tlsverify` and its clients (see api/certs.py)."""

from __future__ import annotations


def add_init(p):
    p.add_argument("dir")
    p.add_argument("--host", action="append", default=[])
    p.add_argument("--days", type=int, default=1095)


def cmd_init(args) -> int:
    from nanovisor.api.certs import init

    files = init(args.dir, args.host, args.days)
    d = files[0].parent.resolve()
    print(f"Wrote {', '.join(f.name for f in files)} to {d}\n")
    print("Serve:\n"
          f"  nanovisor serve --tlsverify --tlscacert {d}/ca.pem --tlscert {d}/server-cert.pem "
          f"--tlskey {d}/server-key.pem -H tcp://0.0.0.0:2376\n"
          "Clients:\n"
          f"  DOCKER_HOST=tcp://HOST:2376 DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH={d} docker ps\n"
          f"  docker.DockerClient(base_url='https://HOST:2376', tls=docker.tls.TLSConfig(ca_cert='{d}/ca.pem',"
          f" client_cert=('{d}/cert.pem', '{d}/key.pem'), verify=True))\n"
          f"Keep {d}/ca-key.pem private: whoever holds it can make certificates the server accepts.")
    return 0
