#!/usr/bin/env python3
"""Build one manual page (man(7) roff) from one `## NAME` section of docs/cli.md.

Usage: md2man.py SOURCE.md PAGE SECTION VERSION OUTPUT

docs/cli.md is the single source of the CLI reference and of the pages: its `## mpfailover`
section becomes mpfailover(1), `## mpfailoverd` mpfailoverd(8). Only the small Markdown subset
cli.md uses is understood, and anything else is an error naming the line, so the page can never
silently lose text: `###` headings (.SH), `####` headings (.SS), paragraphs, `- ` lists (with
continuation lines indented), and inline `code`, **bold**, *italic* and [text](link).
The first paragraph of the section is the NAME line ("page - summary").
Written in Python (already a build dependency) rather than pandoc, which would add a large
Haskell toolchain to the build for two pages.
"""
import datetime
import os
import re
import sys


class SourceError(Exception):
    pass


def escape(text):
    # roff: backslashes first, then the characters that mean something in running text.
    text = text.replace("\\", "\\e")
    return text


def inline(text, where):
    out = []
    pos = 0
    pattern = re.compile(r"`([^`]*)`|\*\*([^*]+)\*\*|\*([^*]+)\*|\[([^\]]+)\]\(([^)]+)\)")
    for m in pattern.finditer(text):
        out.append(escape(text[pos:m.start()]))
        if m.group(1) is not None:
            # Code: bold, with hyphens as minus signs so options copy and paste correctly.
            out.append("\\fB" + escape(m.group(1)).replace("-", "\\-") + "\\fR")
        elif m.group(2) is not None:
            out.append("\\fB" + escape(m.group(2)) + "\\fR")
        elif m.group(3) is not None:
            out.append("\\fI" + escape(m.group(3)) + "\\fR")
        else:
            out.append(escape(m.group(4)))
        pos = m.end()
    rest = text[pos:]
    if "`" in rest:
        raise SourceError(f"{where}: unbalanced backquote")
    out.append(escape(rest))
    line = "".join(out)
    # A line starting with . or ' would be a roff request.
    if line.startswith((".", "'")):
        line = "\\&" + line
    return line


def section_lines(lines, page):
    start = None
    for i, line in enumerate(lines):
        if line.rstrip() == f"## {page}":
            start = i + 1
        elif start is not None and line.startswith("## "):
            return start, lines[start:i]
    if start is None:
        raise SourceError(f"no '## {page}' section")
    return start, lines[start:]


def blocks(lines, first_lineno):
    """Paragraphs, list items and headings, as (kind, text, lineno)."""
    current = None
    for offset, raw in enumerate(lines):
        lineno = first_lineno + offset + 1
        line = raw.rstrip()
        if not line:
            if current:
                yield current
            current = None
            continue
        if line.startswith("#"):
            if current:
                yield current
            current = None
            m = re.match(r"^(###|####) (.+)$", line)
            if not m:
                raise SourceError(f"line {lineno}: only ### and #### headings inside a page")
            yield ("h3" if m.group(1) == "###" else "h4", m.group(2), lineno)
            continue
        if line.startswith(("```", "|", ">")):
            raise SourceError(f"line {lineno}: code blocks, tables and quotes are not supported "
                              "in a man page section; use paragraphs and lists")
        if line.startswith("- "):
            if current:
                yield current
            current = ("item", line[2:], lineno)
            continue
        if current and current[0] == "item" and raw.startswith("  "):
            current = ("item", current[1] + " " + line.strip(), current[2])
            continue
        if current and current[0] == "para":
            current = ("para", current[1] + " " + line, current[2])
        elif current:
            raise SourceError(f"line {lineno}: continue a list item with an indent of 2")
        else:
            current = ("para", line, lineno)
    if current:
        yield current


def render(source, page, section, version):
    lines = open(source, encoding="utf-8").read().splitlines()
    start, body = section_lines(lines, page)
    parts = list(blocks(body, start))
    if not parts or parts[0][0] != "para" or " - " not in parts[0][1]:
        raise SourceError(f"'## {page}': the first paragraph must be 'NAME - summary'")
    name, summary = parts[0][1].split(" - ", 1)
    # Reproducible builds: SOURCE_DATE_EPOCH when set (dpkg-buildpackage sets it), else today.
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    day = datetime.datetime.fromtimestamp(int(epoch), datetime.timezone.utc) if epoch else None
    date = (day.date() if day else datetime.date.today()).isoformat()
    out = [
        f'.\\" Generated from {source.split("/")[-1]} by md2man.py; edit the Markdown, not this.',
        f'.TH {page.upper()} {section} "{date}" "mpfailover {version}" "mpfailover"',
        ".nh",  # no hyphenation: option and key names stay whole
        ".ad l",
        ".SH NAME",
        f"{escape(name)} \\- {inline(summary, source)}",
    ]
    for kind, text, lineno in parts[1:]:
        where = f"{source}:{lineno}"
        if kind == "h3":
            out.append(".SH " + escape(text.upper()))
        elif kind == "h4":
            out.append(".SS " + escape(text))
        elif kind == "item":
            out.append(".IP \\(bu 2")
            out.append(inline(text, where))
        else:
            out.append(".PP")
            out.append(inline(text, where))
    return "\n".join(out) + "\n"


def main(argv):
    if len(argv) != 6:
        print(__doc__.split("\n")[2], file=sys.stderr)
        return 2
    source, page, section, version, output = argv[1:]
    try:
        text = render(source, page, section, version)
    except SourceError as e:
        print(f"md2man: {source}: {e}", file=sys.stderr)
        return 1
    with open(output, "w", encoding="utf-8") as f:
        f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
