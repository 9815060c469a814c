"""Runs a command on a pseudo-terminal, as a person at a terminal would, and
types an answer at each prompt.

    python3 pty_answer.py ANSWER... -- COMMAND ARGS...

A prompt is terminal output that ends with ": " and no newline; each one
gets the next ANSWER and Enter, typed once the program has turned the
terminal's echo off (or after 5 s, when the answer then shows). Prints one JSON object: the exit status and
everything the terminal showed (so a test can check nothing was echoed).
"""

import json
import os
import pty
import select
import sys
import termios
import time

split = sys.argv.index("--")
answers = sys.argv[1:split]
command = sys.argv[split + 1:]

pid, fd = pty.fork()
if pid == 0:
    os.execvp(command[0], command)

shown = b""
prompt_from = 0
while True:
    ready, _, _ = select.select([fd], [], [], 60)
    if not ready:
        break
    try:
        chunk = os.read(fd, 4096)
    except OSError:  # the child closed the terminal
        break
    if not chunk:
        break
    shown += chunk
    if answers and shown[prompt_from:].endswith(b": "):
        # Type only once the program has turned echo off, as a person who
        # waits for the prompt would (typeahead would be echoed by any
        # terminal); if it never does, the answer shows and the test fails.
        deadline = time.monotonic() + 5
        while termios.tcgetattr(fd)[3] & termios.ECHO and time.monotonic() < deadline:
            time.sleep(0.01)
        os.write(fd, answers.pop(0).encode() + b"\r")
        prompt_from = len(shown)

_, status = os.waitpid(pid, 0)
print(json.dumps({
    "status": os.waitstatus_to_exitcode(status),
    "terminal": shown.decode("utf-8", "replace"),
    "unused_answers": len(answers),
}))
