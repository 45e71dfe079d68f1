"""Talks to a running workbook kernel with jupyter_client, Jupyter's own client library.

A kernel_info_request signed with the wrong key must get no reply; a correctly signed one must get a
kernel_info_reply whose signature jupyter_client accepts. Prints one JSON line with what it saw; exit 0 on success.
usage: wrong_signature.py CONNECTION_FILE
"""
import json
import queue
import sys

from jupyter_client import BlockingKernelClient
from jupyter_client.session import Session

client = BlockingKernelClient(connection_file=sys.argv[1])
client.load_connection_file()
client.start_channels()
try:
    forger = Session(key=b"not-the-connection-key", signature_scheme="hmac-sha256", username="forger")
    forger.send(client.shell_channel.socket, "kernel_info_request", {})
    try:
        client.get_shell_msg(timeout=2)
        forged_answered = True
    except queue.Empty:
        forged_answered = False

    msg_id = client.kernel_info()
    # get_shell_msg deserializes through jupyter_client's Session, which raises on a bad kernel signature.
    reply = client.get_shell_msg(timeout=30)
    result = {
        "forged_answered": forged_answered,
        "reply_type": reply["msg_type"],
        "reply_parent": reply["parent_header"].get("msg_id") == msg_id,
        "protocol_version": reply["content"].get("protocol_version"),
        "language": reply["content"].get("language_info", {}).get("name"),
    }
    print(json.dumps(result))
    ok = (not forged_answered and result["reply_type"] == "kernel_info_reply" and result["reply_parent"]
          and result["protocol_version"] == "5.3")
    sys.exit(0 if ok else 1)
finally:
    client.stop_channels()
