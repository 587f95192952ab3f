"""Run the whole console on this machine: web (HTTP + WebSockets), Celery worker and beat.

Started by ``make run``. Prepares the database and the first admin, then supervises the
processes: Ctrl-C (or SIGTERM) stops all of them, and if one dies the others are stopped too.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("DEBUG", "true")
    env.setdefault("DJANGO_SETTINGS_MODULE", "elsehub.settings.base")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _manage(env: dict[str, str], *args: str) -> None:
    subprocess.run([sys.executable, str(ROOT / "manage.py"), *args], cwd=ROOT, env=env, check=True)


def main() -> int:
    env = _env()
    host, port = env.get("HOST", "127.0.0.1"), env.get("PORT", "8000")
    # The demo number's webhooks must reach this server, whatever port it was given.
    env.setdefault("APP_URL", f"http://{host}:{port}")
    data_dir = Path(env.get("DATA_DIR") or ROOT / "var")
    data_dir.mkdir(parents=True, exist_ok=True)

    _manage(env, "migrate", "--noinput", "-v", "0")
    if env.get("DEBUG", "").lower() not in {"1", "true", "yes", "on"}:
        _manage(env, "collectstatic", "--noinput", "-v", "0")
    _manage(env, "ensure_admin")

    demo = env.get("DEMO", "true").lower() in {"1", "true", "yes", "on"}
    sim_port = env.get("SIMULATOR_PORT", "8081")
    env.setdefault("SIMULATOR_URL", f"http://127.0.0.1:{sim_port}")
    commands = {}
    if demo:
        # The provider simulator stands in for WhatsApp: a demo number that pairs itself.
        commands["simulator"] = [
            sys.executable,
            str(ROOT / "manage.py"),
            "simulate_provider",
            "--port",
            sim_port,
            "--auto-scan",
            "2",
        ]
    commands |= {
        "web": [str(BIN / "daphne"), "-b", host, "-p", port, "elsehub.asgi:application"],
        "worker": [str(BIN / "celery"), "-A", "elsehub", "worker", "-l", "INFO", "--concurrency", "2"],
        "beat": [str(BIN / "celery"), "-A", "elsehub", "beat", "-l", "INFO", "-s", str(data_dir / "beat-schedule")],
    }
    processes: dict[str, subprocess.Popen] = {}
    stopping = False

    def stop(*_args) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)

    for name, command in commands.items():
        # Own session per child: Ctrl-C reaches only this supervisor, which stops them in order.
        processes[name] = subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True)
    if demo:
        try:
            _manage(env, "ensure_demo_instance")
        except subprocess.CalledProcessError:
            print("The demo number could not be prepared; the console runs without it.", file=sys.stderr)
    print(
        f"\nElsehub is running on http://{host}:{port}/  (admin: http://{host}:{port}/admin/, "
        f"API docs: http://{host}:{port}/api/docs/). Press Ctrl-C to stop.\n",
        flush=True,
    )

    exit_code = 0
    while not stopping:
        for name, process in processes.items():
            if process.poll() is not None:
                print(f"{name} exited with code {process.returncode}; stopping the others.", file=sys.stderr)
                exit_code = process.returncode or 1
                stopping = True
                break
        time.sleep(0.3)

    for process in processes.values():
        if process.poll() is None:
            process.terminate()  # the main process stops its own children (Celery's pool) in order
    deadline = time.monotonic() + 15
    for process in processes.values():
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    print("Elsehub stopped.", flush=True)
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
