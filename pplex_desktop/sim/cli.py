"""``pplex-sim``: run the simulated PersonaPlex / Moshi server from a terminal."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Sequence

from pplex_desktop.core.voices import DEFAULT_VOICES
from pplex_desktop.sim.jitter import JitterFault
from pplex_desktop.sim.sim import SimConfig, SimServer


def _voices(value: str) -> tuple[str, ...]:
    names = tuple(v.strip() for v in value.split(",") if v.strip())
    if not names:
        raise argparse.ArgumentTypeError("give at least one voice file name, e.g. NATF2.pt")
    return tuple(n if n.endswith((".pt", ".wav")) else n + ".pt" for n in names)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pplex-sim",
        description="A simulated PersonaPlex/Moshi server: it echoes your audio and speaks the "
        "words of the text prompt, over the real wire protocol.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8998, help="port (default 8998, 0 for any)")
    p.add_argument(
        "--flavor", "--flavour", choices=("personaplex", "kyutai"), default="personaplex"
    )
    p.add_argument(
        "--voices",
        type=_voices,
        default=DEFAULT_VOICES,
        help="comma-separated voice file names (default: the 18 PersonaPlex ships)",
    )
    p.add_argument(
        "--voice-dir",
        metavar="DIR",
        help="folder of WAV voices: any NAME.wav in it is accepted as voice_prompt=NAME.wav",
    )
    p.add_argument(
        "--prompt-delay",
        type=float,
        default=0.5,
        metavar="S",
        help="seconds spent 'processing' the prompts before the handshake",
    )
    p.add_argument(
        "--echo-delay-frames",
        type=int,
        default=0,
        metavar="N",
        help="frames (80 ms each) between your audio and its echo",
    )
    p.add_argument(
        "--frame-delay-ms",
        type=float,
        default=0.0,
        metavar="MS",
        help="simulated compute time per frame",
    )
    p.add_argument("--text-every-frames", type=int, default=3, metavar="N")
    p.add_argument(
        "--close-after-frames",
        type=int,
        metavar="N",
        help="fault: drop the connection after N output frames",
    )
    p.add_argument(
        "--error-after-frames",
        type=int,
        metavar="N",
        help="fault: send an error message and close after N output frames",
    )
    p.add_argument(
        "--stall-after-frames",
        type=int,
        metavar="N",
        help="fault: stop answering after N output frames",
    )
    p.add_argument(
        "--raw-echo",
        action="store_true",
        help="benchmarks: send each audio message back unchanged (no codec work)",
    )
    p.add_argument(
        "--instances",
        type=int,
        default=1,
        metavar="N",
        help="run N independent servers on consecutive ports (N backends)",
    )
    jitter = p.add_argument_group(
        "jittery link", "fault: the model's frames leave late, in order (reproducible by seed)"
    )
    jitter.add_argument(
        "--jitter-ms",
        type=float,
        default=0.0,
        metavar="MS",
        help="each frame waits a random 0..MS ms before it is sent",
    )
    jitter.add_argument(
        "--jitter-burst-every-s",
        type=float,
        metavar="S",
        help="every S seconds, hold all frames for --jitter-burst-ms, then send them at once",
    )
    jitter.add_argument("--jitter-burst-ms", type=float, default=300.0, metavar="MS")
    jitter.add_argument("--jitter-seed", type=int, default=0, metavar="N")
    p.add_argument("--log-level", default="INFO")
    return p


async def _serve(config: SimConfig, host: str, port: int, instances: int = 1) -> None:
    # Signal handlers go in before the "listening" line, which scripts take as ready.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    servers = []
    for i in range(instances):
        server = SimServer(config)
        url = await server.start(host, port + i if port else 0)
        servers.append(server)
        print(f"pplex-sim ({config.flavor}) is listening on {url}/api/chat", flush=True)
    try:
        await stop.wait()
    finally:
        for server in servers:
            await server.stop()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(message)s"
    )
    try:
        config = SimConfig(
            flavor=args.flavor,
            voices=args.voices,
            prompt_delay_s=args.prompt_delay,
            echo_delay_frames=args.echo_delay_frames,
            frame_delay_s=args.frame_delay_ms / 1000.0,
            text_every_frames=args.text_every_frames,
            close_after_frames=args.close_after_frames,
            error_after_frames=args.error_after_frames,
            stall_after_frames=args.stall_after_frames,
            raw_echo=args.raw_echo,
            voice_dir=args.voice_dir,
            jitter=JitterFault(
                spread_s=args.jitter_ms / 1000.0,
                burst_every_s=args.jitter_burst_every_s,
                burst_s=args.jitter_burst_ms / 1000.0 if args.jitter_burst_every_s else 0.0,
                seed=args.jitter_seed,
            ),
        )
    except ValueError as exc:
        print(f"pplex-sim: {exc}", file=sys.stderr)
        return 2
    try:
        asyncio.run(_serve(config, args.host, args.port, max(1, args.instances)))
    except OSError as exc:
        print(
            f"pplex-sim: cannot listen on {args.host}:{args.port}: {exc.strerror}.", file=sys.stderr
        )
        return 1
    return 0
