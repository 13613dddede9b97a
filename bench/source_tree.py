#!/usr/bin/env python3
"""Writes a tar stream of source-like text files to stdout: SIZE_MIB MiB in
files of about FILE_KIB KiB each, 100 files a directory, the same bytes for
the same arguments (so two tools are measured on identical input).

Lines are drawn from a pool of generated statements (identifiers, keywords,
numbers, comments), large enough that gzip's 32 KiB window rarely sees a
line twice: the result compresses about as well as real source code does
(about 4x with gzip -6), neither like random bytes nor like a repeated file.

Usage: source_tree.py SIZE_MIB [FILE_KIB]
"""

import io
import random
import sys
import tarfile

KEYWORDS = ["fn", "let", "mut", "if", "else", "match", "return", "for", "in", "while",
            "struct", "impl", "pub", "use", "const", "static", "enum", "trait", "where",
            "async", "await", "self", "Some", "None", "Ok", "Err", "true", "false"]
TYPES = ["u8", "u32", "u64", "i64", "usize", "String", "Vec<u8>", "Option<u64>",
         "Result<(), Error>", "&str", "bool", "HashMap<String, u64>", "Duration"]


WORDS = ["request", "buffer", "count", "index", "layer", "digest", "entry", "path", "name",
         "state", "commit", "image", "store", "error", "result", "value", "config", "stream",
         "reader", "writer", "header", "size", "offset", "length", "chunk", "block", "node",
         "parent", "child", "list", "map", "key", "token", "client", "server", "session",
         "timeout", "retry", "limit", "cache", "queue", "event", "handle", "file", "dir",
         "mode", "owner", "group", "time", "start", "stop", "run", "spec", "status", "code"]


def identifier(rng):
    return "_".join(rng.choice(WORDS) for _ in range(rng.randint(1, 3)))


def statement(rng, names):
    a, b, c = rng.choice(names), rng.choice(names), rng.choice(names)
    kind = rng.randrange(8)
    indent = "    " * rng.randint(0, 3)
    if kind == 0:
        return f"{indent}let {a}: {rng.choice(TYPES)} = {b}.{c}({rng.randint(0, 9999)});"
    if kind == 1:
        return f"{indent}if {a} > {rng.randint(0, 512)} && !{b}.is_empty() {{"
    if kind == 2:
        return f"{indent}// {a} {b} {c}: {rng.choice(KEYWORDS)} {identifier(rng)} when {c} is {rng.choice(KEYWORDS)}"
    if kind == 3:
        return f"{indent}pub fn {a}(&self, {b}: {rng.choice(TYPES)}) -> {rng.choice(TYPES)} {{"
    if kind == 4:
        return f"{indent}{a}.insert({b}.clone(), {c} + {rng.randint(0, 65535)});"
    if kind == 5:
        return f"{indent}}}"
    if kind == 6:
        return f"{indent}return {rng.choice(KEYWORDS)}({a}.{b}?);"
    return f"{indent}for {a} in {b}.iter().filter(|x| x.{c} != {rng.randint(0, 99)}) {{"


def main():
    size = int(sys.argv[1]) * 1024 * 1024
    file_size = int(sys.argv[2] if len(sys.argv) > 2 else 16) * 1024
    rng = random.Random(20260101)
    names = [identifier(rng) for _ in range(5000)]
    pool = [(statement(rng, names) + "\n").encode() for _ in range(200000)]
    out = tarfile.open(fileobj=sys.stdout.buffer, mode="w|", format=tarfile.PAX_FORMAT)
    written, n = 0, 0
    while written < size:
        want = min(file_size // 2 + rng.randrange(file_size), size - written)
        lines, length = [], 0
        while length < want:
            line = pool[rng.randrange(len(pool))]
            lines.append(line)
            length += len(line)
        data = b"".join(lines)[:want]
        info = tarfile.TarInfo(f"src/d{n // 100:05d}/f{n:07d}.rs")
        info.size = len(data)
        info.mode = 0o644
        info.mtime = 1767225600
        out.addfile(info, io.BytesIO(data))
        written += len(data)
        n += 1
    out.close()


if __name__ == "__main__":
    main()
