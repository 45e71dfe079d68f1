"""Drives the installed workbook-csharp kernel with jupyter_client's KernelManager, as front ends do: state across
cells, an interrupt of a cell that never finishes (kernel.json asks for interrupt_request on control), then a
shutdown_request after which the kernel process must exit on its own. Prints one JSON line of what it saw.
usage: interrupt_shutdown.py   (JUPYTER_PATH must point at the folder holding the kernelspec)
"""
import json
import time

from jupyter_client.manager import KernelManager

TIMEOUT = 120
km = KernelManager(kernel_name="workbook-csharp")
km.start_kernel()
kc = km.client()
kc.start_channels()
seen = {}
try:
    kc.wait_for_ready(timeout=TIMEOUT)
    seen["define"] = kc.execute_interactive("var kept = 7;", timeout=TIMEOUT)["content"]["status"]

    msg_id = kc.execute('Console.WriteLine("waiting"); await Task.Delay(System.Threading.Timeout.Infinite);')
    while True:  # the cell is running once its first output arrives
        msg = kc.get_iopub_msg(timeout=TIMEOUT)
        if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "stream":
            break
    km.interrupt_kernel()
    reply = kc.get_shell_msg(timeout=TIMEOUT)
    while reply["parent_header"].get("msg_id") != msg_id:
        reply = kc.get_shell_msg(timeout=TIMEOUT)
    seen["interrupted"] = [reply["content"]["status"], reply["content"].get("ename")]

    outputs = []
    kc.execute_interactive("kept * 6", timeout=TIMEOUT, output_hook=outputs.append)
    seen["after_interrupt"] = [o["content"]["data"]["text/plain"] for o in outputs if o["msg_type"] == "execute_result"]

    km.request_shutdown()
    deadline = time.time() + 30
    while km.is_alive() and time.time() < deadline:
        time.sleep(0.1)
    seen["exited_by_itself"] = not km.is_alive()
    seen["returncode"] = km.provisioner.process.poll() if km.provisioner and km.provisioner.process else None
finally:
    kc.stop_channels()
    if km.is_alive():
        km.shutdown_kernel(now=True)
    km.cleanup_resources()
print(json.dumps(seen))
