"""Carry this machine's pip settings and CA bundle into a stand-in base image.

    python3 docker/standin/pip_settings.py ROOT

Writes ROOT/etc/pip.conf, the settings pip uses here merged into one file, and copies under
ROOT, at their own paths, the files those settings name (a CA bundle, a constraint file) plus
the CA bundle this machine's TLS clients use. docker/standin/Dockerfile copies ROOT onto the
image's /, so that `pip install` in a build FROM the stand-in (docker/Dockerfile's lock install)
reaches the index this machine reaches, trusting the same certificates, with the same timeout
and constraints.

What is merged, lowest priority first, as pip reads it: the global files (XDG_CONFIG_DIRS's
pip/pip.conf, /etc/pip.conf), the user's (~/.pip/pip.conf, ~/.config/pip/pip.conf), the site
file of this Python, PIP_CONFIG_FILE, then the PIP_* environment variables (into [global]).

What is left out, and said so on stdout: a value that names a folder of this machine (a
file:// index, a find-links folder), as the image cannot see it; pip would only warn
"Location ... is ignored" for each. Remote index URLs, numbers and flags are kept as they are.
Runs on Python 3.6 and later.
"""
import configparser
import os
import shutil
import sys
from urllib.parse import unquote, urlparse

# TLS clients' CA bundle: the variables that name it here, then Debian's path, which is also
# where the image's OpenSSL looks by default.
BUNDLE_VARIABLES = ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
DEBIAN_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


def config_files():
    """pip's configuration files in the order pip loads them (later ones win)."""
    xdg = os.environ.get("XDG_CONFIG_DIRS") or "/etc/xdg"
    files = [os.path.join(d, "pip", "pip.conf") for d in xdg.split(os.pathsep) if d] + ["/etc/pip.conf"]
    home = os.path.expanduser("~")
    user_config = os.environ.get("XDG_CONFIG_HOME") or os.path.join(home, ".config")
    files += [os.path.join(home, ".pip", "pip.conf"), os.path.join(user_config, "pip", "pip.conf"),
              os.path.join(sys.prefix, "pip.conf")]
    if os.environ.get("PIP_CONFIG_FILE") and os.environ["PIP_CONFIG_FILE"] != os.devnull:
        files.append(os.environ["PIP_CONFIG_FILE"])
    return [f for f in files if os.path.isfile(f)]


def merged_settings():
    """{section: {key: value}} of every file, then the PIP_* variables; keys as pip spells them."""
    settings = {}
    for path in config_files():
        parser = configparser.RawConfigParser()
        parser.read(path)
        for section in parser.sections():
            for key, value in parser.items(section):
                settings.setdefault(section, {})[key.replace("_", "-")] = value
    for name, value in sorted(os.environ.items()):
        if name.startswith("PIP_") and name != "PIP_CONFIG_FILE":
            settings.setdefault("global", {})[name[4:].lower().replace("_", "-")] = value
    return settings


def local_path(token):
    """The path a setting's word names on this machine, or None for a URL or a plain value."""
    if token.startswith("file:"):
        return unquote(urlparse(token).path)
    return token if token.startswith("/") else None


def carry(path, root):
    target = os.path.join(root, path.lstrip("/"))
    os.makedirs(os.path.dirname(target), exist_ok=True)
    shutil.copyfile(path, target)
    os.chmod(target, 0o644)


def filtered(settings, root):
    """The settings without the words that name folders; the files they name are carried."""
    out = {}
    for section, items in sorted(settings.items()):
        for key, value in sorted(items.items()):
            kept = []
            for token in value.split():
                path = local_path(token)
                if path is not None and os.path.isdir(path):
                    print("pip setting not carried: %s.%s %s (a folder of this machine)" % (section, key, token))
                    continue
                if path is not None and os.path.isfile(path):
                    carry(path, root)
                    print("pip setting carried with its file: %s.%s %s" % (section, key, token))
                else:
                    print("pip setting carried: %s.%s %s" % (section, key, token))
                kept.append(token)
            if kept:
                out.setdefault(section, {})[key] = " ".join(kept)
    return out


def write_config(settings, root):
    path = os.path.join(root, "etc", "pip.conf")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("# This machine's pip settings, carried into the stand-in base by docker/standin/build.sh.\n")
        for section, items in sorted(settings.items()):
            f.write("[%s]\n" % section)
            for key, value in sorted(items.items()):
                f.write("%s = %s\n" % (key, value))
    os.chmod(path, 0o644)


def carry_bundle(root):
    """This machine's CA bundle, at its own path and at Debian's (where the image's OpenSSL looks)."""
    for name in BUNDLE_VARIABLES:
        path = os.environ.get(name)
        if path and os.path.isfile(path):
            break
    else:
        path = DEBIAN_BUNDLE if os.path.isfile(DEBIAN_BUNDLE) else None
    if path is None:
        print("CA bundle: none found here (%s, %s); the image keeps Debian's" % (", ".join(BUNDLE_VARIABLES), DEBIAN_BUNDLE))
        return
    carry(path, root)
    also = ""
    if os.path.realpath(path) != os.path.realpath(DEBIAN_BUNDLE):
        target = os.path.join(root, DEBIAN_BUNDLE.lstrip("/"))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copyfile(path, target)
        also = " (also as %s)" % DEBIAN_BUNDLE
    print("CA bundle carried: %s%s" % (path, also))


def main(argv):
    if len(argv) != 2:
        sys.exit("usage: %s ROOT" % argv[0])
    root = argv[1]
    write_config(filtered(merged_settings(), root), root)
    carry_bundle(root)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
