"""The man pages and the installed configuration (doc/man/, contrib/dnsmux.yaml)
against the code: every option "dnsmux --help" prints is described in
dnsmux.8, every key src/config/yaml.c knows in dnsmux.yaml.5; the pages render
without a groff warning; the default configuration passes --check-config.
Quick checks for every test run -- tests/packaging/run builds the .deb."""
import os
import re
import shutil
import subprocess

import pytest

from conftest import DNSMUX_BIN, REPO, require_binary

MAN = REPO / "doc" / "man"
PAGES = sorted(MAN.glob("*.[1-8]"))


def roff(s):
    """How a literal appears in the roff source: hyphens written \\-."""
    return s.replace("-", "\\-")


def help_options():
    require_binary()
    r = subprocess.run([str(DNSMUX_BIN), "--help"], capture_output=True, text=True, timeout=15)
    assert r.returncode == 0, r.stderr
    longs = sorted(set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]+", r.stdout)))
    shorts = sorted(set(re.findall(r"^\s+(-[a-zA-Z]),", r.stdout, re.M)))
    assert "--listen" in longs and "-l" in shorts, r.stdout
    return longs + shorts


def test_every_option_is_in_dnsmux_8():
    page = (MAN / "dnsmux.8").read_text()
    missing = [o for o in help_options() if roff(o) not in page]
    assert not missing, "dnsmux --help options not described in doc/man/dnsmux.8: %s" % missing


def test_dnsmux_ctl_8_describes_dnsmux_ctl():
    """When dnsmux-ctl is built beside dnsmux: its options and commands."""
    ctl = DNSMUX_BIN.parent / "dnsmux-ctl"
    if not (ctl.is_file() and os.access(ctl, os.X_OK)):
        pytest.skip("no dnsmux-ctl beside %s" % DNSMUX_BIN)
    r = subprocess.run([str(ctl), "--help"], capture_output=True, text=True, timeout=15)
    assert r.returncode == 0, r.stderr
    words = set(re.findall(r"(?<![\w-])--?[a-zA-Z][a-z0-9-]*", r.stdout))
    commands = r.stdout.split("Commands:", 1)[1].split("Options:", 1)[0] if "Commands:" in r.stdout else ""
    words |= set(re.findall(r"^\s+([a-z][a-z-]+)", commands, re.M))
    assert {"status", "stats", "reload", "cache-flush"} <= words, r.stdout
    page = (MAN / "dnsmux-ctl.8").read_text()
    missing = sorted(w for w in words if roff(w) not in page)
    assert not missing, "dnsmux-ctl --help words not described in doc/man/dnsmux-ctl.8: %s" % missing


def yaml_keys(kind="[A-Z]+"):
    src = (REPO / "src" / "config" / "yaml.c").read_text()
    keys = sorted(set(re.findall(r'\bKEY_%s\(\s*"([a-z0-9-]+)"' % kind, src)))
    return keys


def test_every_yaml_key_is_in_dnsmux_yaml_5():
    page = (MAN / "dnsmux.yaml.5").read_text()
    # a key is described where its name is written as a key: "name:" (or
    # "pools.NAME.name:", "listen[].name:"), with roff's \- for hyphens
    keys = yaml_keys()
    assert "threads" in keys and "listen" in keys, keys
    missing = [k for k in keys if roff(k) + ":" not in page]
    assert not missing, "keys of src/config/yaml.c not described in doc/man/dnsmux.yaml.5: %s" % missing


def test_keys_still_to_come_are_the_ones_yaml_c_rejects():
    """The page's "Keys of work still to come" names exactly the keys yaml.c
    recognises and rejects (KEY_LATER): once a key works, the page must
    describe it as working."""
    page = (MAN / "dnsmux.yaml.5").read_text()
    section = page.split(".SS Keys of work still to come", 1)[1].split("\n.S", 1)[0] if (
        ".SS Keys of work still to come" in page) else ""
    named = set(re.findall(r"([a-z0-9\\-]+):", section))
    named = {n.replace("\\-", "-") for n in named}
    assert named == set(yaml_keys("LATER")), "to come in the page: %s; KEY_LATER in yaml.c: %s" % (
        sorted(named), yaml_keys("LATER"))


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_man_page_renders_without_warnings(page):
    """What lintian's groff-message check runs, as the Debian policy asks."""
    if not shutil.which("man"):
        pytest.skip("man-db not installed (scripts/install-deps test installs it)")
    env = dict(os.environ, LC_ALL="C.UTF-8", MANROFFSEQ="", MANWIDTH="80")
    r = subprocess.run(["man", "--warnings", "-E", "UTF-8", "-l", "-Tutf8", "-Z", str(page)], capture_output=True,
                       text=True, env=env, timeout=30)
    assert r.returncode == 0 and not r.stderr.strip(), r.stderr
    name = page.name.rsplit(".", 1)[0]
    first = page.read_text().split("\n.TH ", 1)[1].split()
    assert first[0] == roff(name).upper() and first[1] == page.suffix[1:], first


def test_installed_configuration_passes_check_config():
    require_binary()
    conf = REPO / "contrib" / "dnsmux.yaml"
    r = subprocess.run([str(DNSMUX_BIN), "--check-config", "-c", str(conf)], capture_output=True, text=True,
                       timeout=15)
    assert r.returncode == 0, r.stderr
    assert "OK (2 listeners" in r.stdout, r.stdout
