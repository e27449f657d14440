#!/usr/bin/python3
"""Execute Jupyter notebooks headless with the Deno kernel and check every cell's outputs.

Run through `deno task notebooks` (cli/notebooks.ts), which installs the kernelspec and passes
the paths; by hand:

    JUPYTER_PATH=results/.jupyter /usr/bin/python3 notebooks/run_notebooks.py \
        --out results/notebooks notebooks/*.ipynb

For each notebook it writes the executed copy to --out (never over the input) and checks:
  * every code cell ran (a cell that raises stops the notebook; the error is reported);
  * no cell has an `error` output (a late error from formatting a result counts too);
  * every cell tagged `plot` has an `image/png` or `application/vnd.vegalite.*` output.
Problems are printed as `<notebook>: cell <n> (<first line>): <problem>` and the exit status is 1.
A JSON report (--report) lists every cell's output types and how many outputs arrived late.

The idle trap. The Deno kernel (deno 2.x, cli/tools/jupyter/server.rs) reports `idle` for an
execute request before all of that request's output is on the wire:
  * a cell's value is published by an async JS function (`broadcastResult`: `await format(v)`,
    then the broadcast op) that the kernel does not wait for, so the `execute_result` often
    arrives after `idle` — and arbitrarily late when the value's `[Deno.jupyter.$display]` is
    slow (a chart rendered to PNG, say);
  * console output goes through a separate task and is tagged with whichever execute request
    was *last received* when it is flushed;
  * every output is tagged with the last execute request at the moment it is sent, so a late
    output carries the *next* request's id if the client has sent one meanwhile.
nbclient stops reading a cell's output at `idle` and drops messages whose parent is not the
current cell, so those outputs vanish (or land in the next cell).

The fix (class DenoNotebookClient):
  1. Route by ownership, not by "the current cell": every execute request this client sends is
     recorded with the cell it belongs to, and an output is appended to the cell that owns its
     parent request, whenever it arrives. `execute_result`s are routed by their
     `execution_count`, which the kernel captures when the cell runs, so even a result that is
     tagged with a later request lands in its own cell.
  2. After each cell, a barrier: an execute request (store_history=False, so no execution
     count is used) that waits one timer tick in the kernel and returns nothing. It is owned by
     the cell before it, so console output flushed while it runs is that cell's, and the
     kernel's JS event loop has run the cell's pending result formatting before the barrier's
     reply. Then reading continues until no message has arrived for --quiet-ms (and
     --final-quiet-ms after the last cell, before the kernel is shut down).
With --no-idle-fix the plain nbclient.NotebookClient runs instead (tests use it to show that
outputs are lost without the fix).
"""

import argparse
import asyncio
import json
import os
import sys
import time
from queue import Empty

try:
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionComplete, CellExecutionError
    from nbclient.util import ensure_async
except ImportError as e:  # pragma: no cover - environment problem, reported to the user
    sys.stderr.write(
        f"run_notebooks: cannot import Jupyter's headless runner ({e}).\n"
        "  fix: sudo apt-get install -y jupyter-nbconvert python3-nbclient jupyter-client "
        "python3-ipykernel\n"
        "  (and run this file with /usr/bin/python3, the Python those packages are for)\n"
    )
    sys.exit(2)

PLOT_TAG = "plot"
PLOT_MIME_PREFIXES = ("image/png", "application/vnd.vegalite.")
# One timer tick in the kernel: lets pending promise jobs and async ops of the previous cell
# (result formatting, broadcasts) run before the barrier's reply; evaluates to undefined, so
# the barrier itself publishes nothing.
BARRIER_CODE = "await new Promise((resolve) => setTimeout(resolve, 10));"


class DenoNotebookClient(NotebookClient):
    """nbclient.NotebookClient that keeps outputs the Deno kernel sends after `idle`."""

    def __init__(self, nb, quiet_s=0.2, final_quiet_s=1.0, **kw):
        super().__init__(nb, **kw)
        self.quiet_s = quiet_s
        self.final_quiet_s = final_quiet_s
        self.owner = {}  # execute request msg_id -> cell index (cells and barriers)
        self.cell_by_count = {}  # execution_count -> cell index
        self.late = {}  # cell index -> outputs that arrived after the cell's idle
        self.unrouted = []  # output messages no cell owns
        code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and c.source.strip()]
        self.last_code_index = code[-1] if code else -1

    # -- routing ------------------------------------------------------------------------
    def _target(self, msg):
        content = msg.get("content", {})
        if msg["msg_type"] == "execute_result":
            idx = self.cell_by_count.get(content.get("execution_count"))
            if idx is not None:
                return idx
        return self.owner.get(msg["parent_header"].get("msg_id"))

    def _route_late(self, msg):
        mtype = msg["msg_type"]
        if mtype in ("status", "execute_input"):
            return
        idx = self._target(msg)
        if idx is None:
            if mtype in ("stream", "display_data", "execute_result", "error"):
                self.unrouted.append(msg)
            return
        cell = self.nb.cells[idx]
        try:
            self.process_message(msg, cell, idx)
        except CellExecutionComplete:  # pragma: no cover - status messages are skipped above
            pass
        self.late[idx] = self.late.get(idx, 0) + 1

    async def _async_poll_output_msg(self, parent_msg_id, cell, cell_index):
        # nbclient's loop, except that messages for other requests are routed, not dropped.
        self.owner[parent_msg_id] = cell_index
        while True:
            msg = await ensure_async(self.kc.iopub_channel.get_msg(timeout=None))
            parent = msg["parent_header"].get("msg_id")
            mtype = msg["msg_type"]
            if parent != parent_msg_id:
                self._route_late(msg)
                continue
            if mtype == "execute_input":
                self.cell_by_count[msg["content"].get("execution_count")] = cell_index
            elif mtype == "execute_result":
                idx = self._target(msg)
                if idx is not None and idx != cell_index:
                    self._route_late(msg)
                    continue
            try:
                self.process_message(msg, cell, cell_index)
            except CellExecutionComplete:
                return

    # -- barrier after each cell ----------------------------------------------------------
    async def _drain(self, cell_index, quiet_s):
        barrier = self.kc.execute(
            BARRIER_CODE, silent=False, store_history=False, allow_stdin=False,
            stop_on_error=False,
        )
        self.owner[barrier] = cell_index
        limit = time.monotonic() + (self.timeout or 60)
        while True:
            left = limit - time.monotonic()
            if left <= 0:
                raise TimeoutError("no reply from the kernel to the output barrier")
            try:
                reply = await ensure_async(self.kc.shell_channel.get_msg(timeout=left))
            except Empty:
                continue
            if reply["parent_header"].get("msg_id") == barrier:
                break
        idle = False
        while True:
            try:
                wait = quiet_s if idle else max(0.1, limit - time.monotonic())
                msg = await ensure_async(self.kc.iopub_channel.get_msg(timeout=wait))
            except Empty:
                if idle:
                    return
                raise TimeoutError("no idle from the kernel after the output barrier")
            if (
                msg["parent_header"].get("msg_id") == barrier
                and msg["msg_type"] == "status"
                and msg["content"].get("execution_state") == "idle"
            ):
                idle = True
                continue
            self._route_late(msg)

    async def async_execute_cell(self, cell, cell_index, execution_count=None,
                                 store_history=True):
        try:
            result = await super().async_execute_cell(
                cell, cell_index, execution_count=execution_count, store_history=store_history
            )
        except CellExecutionError:
            # Keep what the failed cell still sends, then let the caller report it.
            await self._drain(cell_index, self.final_quiet_s)
            raise
        if cell.cell_type == "code" and cell.source.strip():
            last = cell_index == self.last_code_index
            await self._drain(cell_index, self.final_quiet_s if last else self.quiet_s)
        return result


# -- checks --------------------------------------------------------------------------------
def first_line(cell):
    for line in cell.source.splitlines():
        s = line.strip()
        if s:
            return s[:60] + ("…" if len(s) > 60 else "")
    return ""


def output_mimes(cell):
    mimes = []
    for out in cell.get("outputs", []):
        t = out.get("output_type")
        if t in ("display_data", "execute_result", "update_display_data"):
            mimes.extend(out.get("data", {}).keys())
        elif t == "stream":
            mimes.append("stream/" + out.get("name", "?"))
        elif t == "error":
            mimes.append("error")
    return mimes


def check_notebook(nb, label, failed_cell=None, failure=None):
    problems = []

    def where(i):
        return f"{label}: cell {i + 1} ({first_line(nb.cells[i])})"

    if failure is not None:
        problems.append(f"{where(failed_cell)}: raised {failure}" if failed_cell is not None
                        else f"{label}: {failure}")
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error" and i != failed_cell:
                problems.append(f"{where(i)}: {out.get('ename')}: {out.get('evalue')}")
        tags = cell.get("metadata", {}).get("tags", [])
        if PLOT_TAG in tags and (failed_cell is None or i < failed_cell):
            mimes = output_mimes(cell)
            if not any(m.startswith(PLOT_MIME_PREFIXES) for m in mimes):
                problems.append(
                    f"{where(i)}: tagged '{PLOT_TAG}' but has no image/png or "
                    f"application/vnd.vegalite.* output (outputs: {mimes or 'none'})"
                )
    return problems


def error_summary(nb, index):
    for out in nb.cells[index].get("outputs", []):
        if out.get("output_type") == "error":
            return f"{out.get('ename')}: {out.get('evalue')}"
    return "an error"


def run_one(path, args):
    label = os.path.relpath(path, args.label_root) if args.label_root else path
    nb = nbformat.read(path, as_version=4)
    kw = dict(
        timeout=args.timeout,
        kernel_name=args.kernel,
        resources={"metadata": {"path": args.cwd or os.path.dirname(os.path.abspath(path))}},
        allow_errors=False,
        record_timing=False,
    )
    if args.no_idle_fix:
        client = NotebookClient(nb, **kw)
    else:
        client = DenoNotebookClient(
            nb, quiet_s=args.quiet_ms / 1000, final_quiet_s=args.final_quiet_ms / 1000, **kw
        )
    started = time.monotonic()
    failed_cell = failure = None
    try:
        client.execute()
    except CellExecutionError:
        failed_cell = next(
            (i for i, c in enumerate(nb.cells)
             if any(o.get("output_type") == "error" for o in c.get("outputs", []))),
            None,
        )
        failure = error_summary(nb, failed_cell) if failed_cell is not None else "an error"
    except Exception as e:  # kernel died, timeout, kernel missing: name it
        failure = f"{type(e).__name__}: {e}"
    seconds = time.monotonic() - started
    problems = check_notebook(nb, label, failed_cell, failure)
    os.makedirs(args.out, exist_ok=True)
    out_path = os.path.join(args.out, os.path.basename(path))
    nbformat.write(nb, out_path)
    late = getattr(client, "late", {})
    cells = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        cells.append({
            "index": i,
            "first_line": first_line(cell),
            "tags": cell.get("metadata", {}).get("tags", []),
            "outputs": output_mimes(cell),
            "late": late.get(i, 0),
        })
    return {
        "notebook": label,
        "executed": out_path,
        "ok": not problems,
        "problems": problems,
        "seconds": round(seconds, 2),
        "late_outputs": sum(late.values()),
        "unrouted_outputs": len(getattr(client, "unrouted", [])),
        "cells": cells,
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("notebooks", nargs="+")
    p.add_argument("--out", required=True, help="folder for the executed copies")
    p.add_argument("--report", help="write a JSON report here")
    p.add_argument("--kernel", default="deno", help="kernelspec name (default deno)")
    p.add_argument("--cwd", help="kernel working folder (default: the notebook's folder)")
    p.add_argument("--label-root", help="name notebooks relative to this folder")
    p.add_argument("--timeout", type=int, default=600, help="seconds per cell (default 600)")
    p.add_argument("--quiet-ms", type=int, default=100,
                   help="after each cell's barrier, read until no message for this long")
    p.add_argument("--final-quiet-ms", type=int, default=1000,
                   help="the same after the last cell, before shutting the kernel down")
    p.add_argument("--no-idle-fix", action="store_true",
                   help="plain nbclient (loses outputs sent after idle; for tests)")
    args = p.parse_args()

    reports = []
    for path in args.notebooks:
        r = run_one(path, args)
        reports.append(r)
        status = "ok" if r["ok"] else f"{len(r['problems'])} problem(s)"
        plots = sum(1 for c in r["cells"] if PLOT_TAG in c["tags"])
        print(
            f"{r['notebook']}: {status} — {len(r['cells'])} code cells, {plots} plot cells, "
            f"{r['late_outputs']} outputs after idle kept, {r['seconds']} s -> {r['executed']}",
            flush=True,
        )
        for prob in r["problems"]:
            print(f"  {prob}", flush=True)
    if args.report:
        with open(args.report, "w") as f:
            json.dump(reports, f, indent=1)
    failed = [r for r in reports if not r["ok"]]
    print(f"notebooks: {len(reports) - len(failed)} ok, {len(failed)} failed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
