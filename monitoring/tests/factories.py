"""Status text builders for tests: real-shaped `status 2` output with chosen clients and time."""

import datetime as dt

UTC = dt.UTC
HEADER = (
    "HEADER,CLIENT_LIST,Common Name,Real Address,Virtual Address,Virtual IPv6 Address,Bytes Received,"
    "Bytes Sent,Connected Since,Connected Since (time_t),Username,Client ID,Peer ID,Data Channel Cipher"
)


def status2(time, clients):
    """clients: (common_name, client_id, connected_since, bytes_received, bytes_sent, virtual_address)."""
    lines = [
        "TITLE,OpenVPN 2.6.14 x86_64-pc-linux-gnu",
        f"TIME,{time:%Y-%m-%d %H:%M:%S},{int(time.timestamp())}",
        HEADER,
    ]
    for name, client_id, since, received, sent, virtual in clients:
        lines.append(
            f"CLIENT_LIST,{name},198.51.{100 + client_id // 200}.{10 + client_id % 200}:{40000 + client_id},"
            f"{virtual},,{received},{sent},"
            f"{since:%Y-%m-%d %H:%M:%S},{int(since.timestamp())},UNDEF,{client_id},{client_id},AES-256-GCM"
        )
    lines += ["HEADER,ROUTING_TABLE,Virtual Address,Common Name,Real Address,Last Ref,Last Ref (time_t)",
              "GLOBAL_STATS,Max bcast/mcast queue length,0", "END"]
    return "\n".join(lines) + "\n"


def at(seconds, base=dt.datetime(2026, 11, 22, 8, 0, tzinfo=UTC)):
    return base + dt.timedelta(seconds=seconds)
