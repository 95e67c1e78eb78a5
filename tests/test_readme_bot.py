"""README's "写一个真正的机器人 / Writing a real bot" runs as written, in each language.

The section's python blocks, in order, make one program; each language's copy
is run in a subprocess, as a reader who pastes it into a file would run it.
"""

import os
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).parent.parent
HEADINGS = ("写一个真正的机器人", "Writing a real bot")
HEADING = re.compile(r"(#+)\s+(.*)")


def sections(markdown: str) -> dict[str, str]:
    """The python code of each section whose heading names one of HEADINGS, by heading."""
    found: dict[str, list[str]] = {}
    current: str | None = None  # the section we are in, if it is one of ours
    level = 0
    fence: list[str] | None = None  # the python block being read
    in_fence = False
    for line in markdown.splitlines():
        if in_fence:
            if line.startswith("```"):
                in_fence = False
                if fence is not None and current is not None:
                    found[current].append("\n".join(fence))
            elif fence is not None:
                fence.append(line)
            continue
        if line.startswith("```"):
            in_fence = True
            fence = [] if line.strip() == "```python" else None
            continue
        if (match := HEADING.match(line)) is not None:
            depth, title = len(match.group(1)), match.group(2)
            if current is not None and depth <= level:
                current = None
            if any(name in title for name in HEADINGS):
                current, level = title, depth
                found[current] = []
    return {title: "\n\n".join(blocks) for title, blocks in found.items()}


def test_the_real_bot_section_runs_as_written() -> None:
    readme = (ROOT / "README.md").read_text("utf-8")
    found = sections(readme)
    assert found, (
        "README.md has no section headed '写一个真正的机器人' or 'Writing a real bot': "
        "place the section from /work/notes/h16_readme_section.md (issue 16) in README.md"
    )
    for title, code in found.items():
        assert "bot.command(" in code and "bot.ask(" in code, f"{title}: no code blocks found"
        result = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            encoding="utf-8",
            timeout=60,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONIOENCODING": "utf-8"},
            check=False,
        )
        where = f"README section {title!r}"
        assert result.returncode == 0, f"{where} failed:\n{result.stderr}"
        assert "Traceback" not in result.stderr, f"{where}:\n{result.stderr}"
        printed = result.stdout.splitlines()
        assert "上海：晴 / sunny" in printed, f"{where} printed {printed}"
        assert "[CQ:at,qq=20002]叫我干嘛？/ You called?" in printed
        assert "你叫什么？/ What is your name?" in printed
        assert "你好，小明！" in printed
        assert any(line.startswith("[CQ:forward,id=") for line in printed), printed
        assert printed[-1] == "skipped: 2 waits: 0"
