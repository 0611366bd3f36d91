"""`circuits view RUN_DIR`: the run's interactive page, graph.html (written into the run
directory; `--serve` serves it on 127.0.0.1)."""

import argparse
import logging
from pathlib import Path

EPILOG = """examples:
  circuits view out/ioi                 write out/ioi/graph.html; open it from disk, offline
  circuits view out/ioi --serve         also serve the run directory on 127.0.0.1 (a free port)
  circuits view out/ioi --serve --port 8765
  circuits view out/ioi --screenshot ioi.png   a PNG of the page (headless Chromium)

The page draws the circuit by layer and role (columns labelled with the first prompt's
tokens), with sliders for the node and edge thresholds, a click for a node's edges, heads and
description, search by feature id or text, and groups of features (supernodes) that are
exported to graph.json's qParams.supernodes. Served, the page can save its groups into the
run's graph.json and graph.html; the server answers nothing outside the run directory.
Every `circuits run` writes graph.html too.
"""

log = logging.getLogger(__name__)


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "view",
        help="write (and serve) the interactive page of a run directory",
        description="Write graph.html, the interactive page of a run directory of "
        "`circuits run`: one self-contained file that opens from disk without a network.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("run_dir", type=Path, help="a run directory of `circuits run`")
    parser.add_argument(
        "--serve", action=argparse.BooleanOptionalAction, default=False,
        help="serve the run directory on 127.0.0.1 until interrupted (default: %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--port", type=_port, default=0, help="port for --serve (default: a free one)"
    )
    parser.add_argument("--screenshot", type=Path, help="also write a PNG of the page here")
    parser.set_defaults(run=run, parser=parser)


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a port number, got {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"must be in 0..65535, got {port}")
    return port


def run(args: argparse.Namespace) -> int:
    from circuits.view.page import write_page

    if args.port and not args.serve:
        args.parser.error("--port needs --serve")
    path = write_page(args.run_dir)
    print(f"wrote {path}")
    if args.screenshot is not None:
        from circuits.view.browser import Browser

        with Browser() as browser:
            browser.offline()
            browser.open(path.resolve().as_uri())
            browser.screenshot(args.screenshot)
        print(f"wrote {args.screenshot}")
    if args.serve:
        serve(args.run_dir, args.port)
    return 0


def serve(run_dir: Path, port: int) -> None:
    from circuits.view.server import ViewServer

    try:
        server = ViewServer(run_dir, port)
    except OSError as err:
        from circuits.view.data import ViewError

        raise ViewError(f"cannot serve on 127.0.0.1:{port}: {err.strerror or err}") from err
    print(f"serving {Path(run_dir)} at {server.url} (Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
