"""Runs a command on a pseudo-terminal, as a person at a terminal would, and
types an answer at each prompt.

    python3 pty_answer.py ANSWER... -- COMMAND ARGS...

An answer is typed (then Enter) only when the program is waiting for hidden
input: it has turned the terminal's echo off, it has written nothing for a
moment, and what it wrote since the last answer ends with ": ". Output that
merely contains ": " (an error message read in pieces) or a prompt read
before the program turned echo off is never answered, so an answer can
neither be typed early (the terminal would echo it) nor land at the wrong
prompt. Prints one JSON object: the exit status and everything the terminal
showed (so a test can check nothing was echoed).
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
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    ready, _, _ = select.select([fd], [], [], 0.05)
    if ready:
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        shown += chunk
        continue
    # Quiet for 50 ms: answer only a prompt the program is now reading with echo off.
    echo_off = not termios.tcgetattr(fd)[3] & termios.ECHO
    if answers and echo_off and shown[prompt_from:].endswith(b": "):
        os.write(fd, answers.pop(0).encode() + b"\r")
        prompt_from = len(shown)

_, status = os.waitpid(pid, 0)
print(json.dumps({
    "status": os.waitstatus_to_exitcode(status),
    "terminal": shown.decode("utf-8", "replace"),
    "unused_answers": len(answers),
}))
