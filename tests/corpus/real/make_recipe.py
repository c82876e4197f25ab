"""Write recipe.json from the pinned registry artifacts (a maintainer's tool, run when a pin
changes): which files of each package are real test mail, and what that package's own tests
record for each. The artifacts are read where scripts/fetch_corpus.py keeps them.

    python -m tests.corpus.real.make_recipe [.cache/corpus-real/artifacts]
"""

from __future__ import annotations

import ast
import hashlib
import json
import re
import sys
import tarfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

# registry, name, version, artifact file name, licence, the folder the archive unpacks to.
PACKAGES: dict[str, dict[str, str]] = {
    "email-reply-parser": {
        "registry": "npm", "name": "email-reply-parser", "version": "1.4.2",
        "artifact": "email-reply-parser-1.4.2.tgz", "licence": "MIT", "root": "package"},
    "talon": {
        "registry": "pypi", "name": "talon", "version": "1.4.4",
        "artifact": "talon-1.4.4.tar.gz", "licence": "Apache-2.0", "root": "talon-1.4.4"},
    "flufl.bounce": {
        "registry": "pypi", "name": "flufl.bounce", "version": "6.0.0",
        "artifact": "flufl_bounce-6.0.0.tar.gz", "licence": "Apache-2.0",
        "root": "flufl_bounce-6.0.0"},
    "bounceparser": {
        "registry": "debian-source", "name": "libmail-deliverystatus-bounceparser-perl",
        "version": "1.543+repacked-1",
        "artifact": "libmail-deliverystatus-bounceparser-perl_1.543+repacked.orig.tar.xz",
        "licence": "Artistic-1.0 or GPL-1.0+ (Perl)",
        "root": "Mail-DeliveryStatus-BounceParser-1.543"},
    "mailman-pgp": {
        "registry": "pypi", "name": "mailman-pgp", "version": "0.3.0",
        "artifact": "mailman_pgp-0.3.0.tar.gz", "licence": "GPL-3.0-or-later",
        "root": "mailman_pgp-0.3.0"},
    "django-mailbox": {
        "registry": "pypi", "name": "django-mailbox", "version": "4.10.1",
        "artifact": "django-mailbox-4.10.1.tar.gz", "licence": "MIT",
        "root": "django-mailbox-4.10.1"},
    "hyperkitty": {
        "registry": "pypi", "name": "HyperKitty", "version": "1.3.12",
        "artifact": "hyperkitty-1.3.12.tar.gz", "licence": "GPL-3.0-or-later",
        "root": "hyperkitty-1.3.12"},
    "notmuch": {
        "registry": "debian-source", "name": "notmuch", "version": "0.37-1",
        "artifact": "notmuch_0.37.orig.tar.xz", "licence": "GPL-3.0-or-later",
        "root": "notmuch-0.37"},
    "messagelib": {
        "registry": "debian-source", "name": "kf5-messagelib", "version": "22.12.3-2~deb12u1",
        "artifact": "kf5-messagelib_22.12.3.orig.tar.xz", "licence": "GPL-2.0-or-later",
        "root": "messagelib-22.12.3"},
}


class Archive:
    """One artifact's members, read without unpacking it."""

    def __init__(self, path: Path, root: str) -> None:
        self.root = root
        self.files: dict[str, bytes] = {}
        with tarfile.open(path) as tar:
            for m in tar.getmembers():
                f = tar.extractfile(m) if m.isfile() else None
                if f is not None:
                    self.files[m.name] = f.read()
        self.names = set(self.files)

    def read(self, rel: str) -> bytes:
        return self.files[f"{self.root}/{rel}"]

    def text(self, rel: str) -> str:
        return self.read(rel).decode("utf-8")

    def ls(self, under: str) -> list[str]:
        prefix = f"{self.root}/{under}/"
        return sorted(n[len(self.root) + 1:] for n in self.names if n.startswith(prefix))


MAILS: list[dict[str, Any]] = []


def add(pkg: str, path: str, category: str, expect: dict[str, Any], fmt: str = "eml",
        recorded_by: str = "", **meta: str) -> None:
    name = path.rsplit("/", 1)[1]
    MAILS.append({"file": f"{pkg}/{name}", "package": pkg, "path": path, "category": category,
                  "format": fmt, **{k: v for k, v in meta.items() if v},
                  "recorded_by": recorded_by, "expect": expect})


LANG = {"email_7": "it", "email_8": "nl", "email_13": "it", "email_14": "pl", "email_16": "pl",
        "email_17": "pl", "portuguese": "pt", "german": "de", "norwegian": "no",
        "finnish": "fi", "fr_": "fr"}
CLIENT = {"email_10": "Hotmail", "email_18": "Outlook", "norwegian_gmail": "Gmail",
          "gmail_split": "Gmail", "outlook_split": "Outlook", "ios_outlook": "Outlook for iOS",
          "msn": "MSN", "zoho": "Zoho Mail", "iphone": "iPhone Mail",
          "blackberry": "BlackBerry"}


def reply_parser(a: Archive) -> None:
    """email-reply-parser (crisp-oss, npm): test/test.js's literal first fragments."""
    js = a.text("test/test.js")
    common = re.search(r"COMMON_FIRST_FRAGMENT = '(.*?)';\n", js, re.S)
    assert common
    first = common.group(1).replace("\\n\\\n", "\n")
    for fn in re.split(r"\nexports\.", js)[1:]:
        m = re.search(r'get_email\("([^"]+)"\)', fn)
        if not m:
            continue
        stem, test = m.group(1), fn.split(" ")[0]
        lit = (re.search(r'test\.equal\("((?:[^"\\]|\\.)*)", (?:reply|email)\.fragments\[0\]'
                         r'\.toString\(\)\)', fn)
               or re.search(r'test\.equal\("((?:[^"\\]|\\.)*)", fragments\[0\]\.toString\(\)\)',
                            fn)
               or re.search(r'test\.equal\(email\.getVisibleText\(\), "((?:[^"\\]|\\.)*)"\)',
                            fn))
        if "COMMON_FIRST_FRAGMENT, fragments[0]" in fn:
            text = first
        elif lit:
            text = json.loads('"' + lit.group(1) + '"')
        else:
            continue
        add("email-reply-parser", f"test/fixtures/{stem}.txt", "reply",
            {"new_text": text, "mode": "equal"}, "text", f"test/test.js ({test})",
            language=next((v for k, v in LANG.items() if k in stem or stem == k), "en"),
            client=next((v for k, v in CLIENT.items() if k in stem.lower()), ""))


def talon(a: Archive) -> None:
    """talon: standard_replies/*.eml against *_reply_text ("Hello" where there is none);
    html_replies/*.html: "Hi. I am fine. Thanks, Alex" compared without whitespace."""
    for p in a.ls("tests/fixtures/standard_replies"):
        if not p.endswith(".eml"):
            continue
        client = p.rsplit("/", 1)[1][:-4]
        rt = p[:-4] + "_reply_text"
        expect: dict[str, Any] = ({"new_text_file": rt} if f"{a.root}/{rt}" in a.names
                                  else {"new_text": "Hello"})
        add("talon", p, "reply", {**expect, "mode": "prefix"}, "eml",
            "tests/text_quotations_test.py test_standard_replies (talon keeps a signature, "
            "so ours must start its text)", language="en", client=client)
    for p in a.ls("tests/fixtures/html_replies"):
        client = p.rsplit("/", 1)[1][:-5]
        add("talon", p, "reply", {"new_text": "Hi. I am fine.\n\nThanks,\nAlex",
                                  "mode": "nospace"}, "html",
            f"tests/html_quotations_test.py test_{client}_reply (extract_reply_and_check)",
            language="ru" if client.endswith("_ru") else "en", client=client)
    add("talon", "tests/fixtures/OLK_SRC_BODY_SECTION.html", "reply",
        {"new_text": "Reply", "mode": "nospace"}, "html",
        "tests/html_quotations_test.py test_OLK_SRC_BODY_SECTION_stripped", language="en",
        client="Outlook for Mac")
    add("talon", "tests/fixtures/reply-separated-by-hr.html", "reply",
        {"new_text": "Hi\nthere", "mode": "nospace"}, "html",
        "tests/html_quotations_test.py test_reply_separated_by_hr", language="en")
    add("talon", "tests/fixtures/reply-quotations-share-block.eml", "reply",
        {"contains": [], "excludes": ["From"], "mode": "parts"}, "eml",
        "tests/html_quotations_test.py test_reply_quotations_share_block ('From' not in it)",
        language="en")


def flufl(a: Archive) -> None:
    """flufl.bounce: tests/test_detectors.py DETECTORS, each file a bounce (or a delay
    warning) of the MTA its detector names."""
    src = a.text("tests/test_detectors.py")
    body = src.split("DETECTORS = ", 1)[1].split("\n]\n", 1)[0] + "\n]"
    seen: set[str] = set()
    for detector, filename, addresses, temporary in ast.literal_eval(body):
        if not addresses or filename in seen:  # no address: "must not throw" cases
            continue
        seen.add(filename)
        add("flufl.bounce", f"tests/data/{filename}", "bounce", {"machine": True}, "eml",
            f"tests/test_detectors.py DETECTORS ({detector}: "
            f"{'temporary' if temporary else 'permanent'} failure of {addresses[0].decode()})",
            provider=f"{detector} ({filename.rsplit('_', 1)[0]})")
    add("flufl.bounce", "tests/data/dumbass_01.txt", "bounce", {"machine": True}, "eml",
        "tests/test_detectors.py (a bounce whose addresses no detector finds)",
        provider="unrecognised")


AUTO = {"autoreply.t", "non-bounce.t"}
# Its tests record these spam mails as bounces while saying that this is the wrong answer
# they document ("a non-bounce spam message is parsed as a bounce"): left out.
WRONG = {"t/corpus/spam-bogus-email-in-report.msg", "t/corpus/spam-with-image.msg"}
# warnings.t: "not a bounce"; a Lotus Notes out-of-office reply.
NOTES_AUTO = "t/corpus/warning-6.msg"


def bounceparser(a: Archive) -> None:
    """Mail::DeliveryStatus::BounceParser: every t/corpus file its t/*.t read; is_bounce 1
    is a bounce, and the non-bounces of autoreply.t and non-bounce.t are vacation and
    challenge-response mail: machine mail either way."""
    corpus = [p for p in a.ls("t/corpus")]
    done: set[str] = set()
    for t in a.ls("t"):
        if not t.endswith(".t"):
            continue
        src, test = a.text(t), t.rsplit("/", 1)[1]
        refs = set(re.findall(r"t/corpus/([\w.*-]+\.msg)", src))
        refs |= set(re.findall(r"[\"']([\w.-]+\.msg)[\"']\s*=>", src))  # "t/corpus/$file" loops
        for ref in sorted(refs):
            rx = re.compile("^t/corpus/" + re.escape(ref).replace(r"\*", ".*") + "$")
            for p in corpus:
                if not rx.match(p) or p in done or p in WRONG:
                    continue
                done.add(p)
                stem = p.rsplit("/", 1)[1][:-4]
                auto = test in AUTO or p == NOTES_AUTO
                add("bounceparser", p, "auto-reply" if auto else "bounce", {"machine": True},
                    "eml", f"{t} ({'is_bounce 0: ' + stem if auto else 'is_bounce 1'})",
                    provider=re.sub(r"-?\d+$", "", stem.replace(".unknown", "")))


PGP: dict[str, tuple[dict[str, Any], str]] = {  # file: (expectation, its test)
    "mime_encrypted.eml": ({"encrypted": True, "readable": True,
                            "text_contains": "Some encrypted text."},
                           "test_mime.py test_decrypt (rsa_1024)"),
    "mime_signed_then_encrypted.eml": ({"encrypted": True},
                                       "test_mime.py test_is_encrypted"),
    "mime_signed.eml": ({"encrypted": False, "signed": True}, "test_mime.py test_verify"),
    "mime_signed_invalid.eml": ({"encrypted": False}, "test_mime.py test_verify (invalid)"),
    "mime_multisig.eml": ({"encrypted": False, "signed": True},
                          "test_mime_multisig.py test_is_signed"),
    "inline_encrypted.eml": ({"encrypted": True, "readable": True,
                              "text_contains": "Some encrypted text."},
                             "test_inline.py test_decrypt (rsa_1024)"),
    "inline_encrypted_multipart.eml": ({"encrypted": True}, "test_inline.py test_is_encrypted"),
    "inline_cleartext_signed.eml": ({"encrypted": False, "signed": True},
                                    "test_inline.py test_verify"),
    "inline_signed.eml": ({"signed": True}, "test_inline.py test_is_signed"),
    "clear.eml": ({"encrypted": False, "machine": False}, "test_mime.py (clear: not signed)"),
}


def mailman_pgp(a: Archive) -> None:
    """mailman-pgp: PGP/MIME and inline PGP written by Mutt, with its published test keys."""
    base = "src/mailman_pgp/pgp/tests"
    for name, (expect, test) in PGP.items():
        add("mailman-pgp", f"{base}/data/messages/{name}", "pgp", expect, "eml",
            f"{base}/{test}", client="Mutt 1.7.2", key="rsa_1024")
    for key in ("rsa_1024", "ecc_p256", "ecc_secp256k1", "ecc_curve25519", "dsa_elgamal_1024"):
        add("mailman-pgp", f"{base}/data/keys/{key}.priv.asc", "key", {}, "key",
            f"{base}/ (test key, secret published with the tests)")


DJANGO = {  # file: expectation from tests/test_process_email.py
    "message_with_koi8r_filename_attachments.eml": {
        "attachment": "Ведомости.pdf"},
    "message_with_attachment.eml": {"attachment": "heart.png"},
    "message_with_utf8_attachment.eml": {"attachment": "piłkochwyty.jpg"},
    "multipart_text.eml": {"text_contains": "Hello there!"},
    "message_with_long_text_lines.eml": {
        "text_contains": "The one of us with a bike pump is far ahead, but a man stopped to "
                         "help us and gave us his pump."},
    "message_with_invalid_content_for_declared_encoding.eml": {},
    "message_with_single_byte_encoding.eml": {
        "text_contains": "Это сообщение имеет неправильную кодировка."},
    # Its recorded subject is a Latin-1 reading of undeclared cp1251 bytes: only that the
    # mail is read as a report is compared.
    "message_with_single_byte_extended_subject_encoding.eml": {},
    "message_with_text_attachment.eml": {"text_contains": "Has an attached text document"},
    "generic_message.eml": {"subject": "Message Without Attachment"},
    "message_with_rfc822_attachment.eml": {},
    "email_issue_82.eml": {},
}


def django_mailbox(a: Archive) -> None:
    """django-mailbox: mis-encoded and oddly built mail its tests read."""
    for name, expect in DJANGO.items():
        add("django-mailbox", f"django_mailbox/tests/messages/{name}", "malformed",
            {**expect, "machine": False}, "eml",
            "django_mailbox/tests/test_process_email.py")


NOTMUCH: dict[str, tuple[dict[str, Any], str, str]] = {  # file: (expectation, test, client)
    "mangling/mixed-up.eml": (
        {"encrypted": True, "readable": True,
         "text_contains": 'The password is "abcd1234!", please do not tell anyone.'},
        "T351-pgpmime-mangling.sh", "Exchange 'mixed-up' mangling of PGP/MIME"),
    "crypto/basic-encrypted.eml": ({"encrypted": True, "readable": True},
                                   "T450-emacs-show.sh, T357-index-decryption.sh",
                                   "Emacs message-mode (notmuch)"),
    "crypto/encrypted-signed.eml": ({"encrypted": True, "readable": True, "signed": True},
                                    "T357-index-decryption.sh (good signature)",
                                    "Emacs message-mode (notmuch)"),
    "crypto/encrypted-rfc822-attachment": ({"encrypted": True, "readable": True},
                                           "T450-emacs-show.sh", "alot 0.9.1"),
    "crypto/simple-encrypted": ({"encrypted": True},
                                "T357-index-decryption.sh (+encrypted)",
                                "Emacs message-mode (notmuch)"),
    "protected-headers/protected-header.eml": (
        {"encrypted": True, "readable": True, "subject": "This is a protected header"},
        "T356-protected-headers.sh", "Emacs message-mode (notmuch)"),
    "protected-headers/encrypted-signed.eml": (
        {"encrypted": True, "readable": True, "signed": True, "subject": "Rhinoceros dinner"},
        "T356-protected-headers.sh", "Emacs message-mode (notmuch)"),
    "protected-headers/encrypted-signed-not-masked.eml": (
        {"encrypted": True, "readable": True, "signed": True, "subject": "Rhinoceros dinner"},
        "T356-protected-headers.sh", "Emacs message-mode (notmuch)"),
    "protected-headers/encrypted-message-with-forwarded-attachment.eml": (
        {"encrypted": True, "readable": True,
         "subject": "This is the cryptographic envelope subject"},
        "T356-protected-headers.sh", "Emacs message-mode (notmuch)"),
    "protected-headers/misplaced-protected-header.eml": (
        {"encrypted": True, "readable": True, "subject": "Subject Unavailable"},
        "T356-protected-headers.sh", "Emacs message-mode (notmuch)"),
    "protected-headers/no-protected-header-attribute.eml": (
        {"encrypted": True, "readable": True, "subject": "Subject Unavailable"},
        "T356-protected-headers.sh", "Emacs message-mode (notmuch)"),
    "protected-headers/double-wrapped-with-phony-protected-header.eml": (
        {"encrypted": True, "subject": "Subject Unavailable"},
        "T356-protected-headers.sh", "Emacs message-mode (notmuch), double-wrapped"),
    "protected-headers/phony-protected-header-bad-encryption.eml": (
        {"encrypted": True, "readable": False, "subject": "Subject Unavailable"},
        "T356-protected-headers.sh (decryption fails)", "Emacs message-mode (notmuch)"),
    "protected-headers/wrapped-protected-header.eml": (
        {"encrypted": True, "readable": True,
         "subject": "[mailing-list] Subject Unavailable"},
        "T356-protected-headers.sh (decrypted: partial)",
        "a mailing list's re-wrap of PGP/MIME"),
    "protected-headers/simple-signed-mail.eml": ({"encrypted": False, "signed": True},
                                                 "T356-protected-headers.sh",
                                                 "Emacs message-mode (notmuch)"),
    "protected-headers/signed-protected-header.eml": ({"encrypted": False, "signed": True},
                                                      "T356-protected-headers.sh",
                                                      "Emacs message-mode (notmuch)"),
}


def notmuch(a: Archive) -> None:
    """notmuch: its PGP/MIME test corpora and test key; T3xx tests record what shows."""
    for rel, (expect, test, client) in NOTMUCH.items():
        add("notmuch", f"test/corpora/{rel}", "pgp", expect, "eml", f"test/{test}",
            client=client, key="gnupg-secret-key")
    add("notmuch", "test/gnupg-secret-key.asc", "key", {}, "key",
        "test/gnupg-secret-key.asc (the test suite's key, secret published with it)")


_AGENT = re.compile(rb"^(?:User-Agent|X-Mailer):[ \t]*([^\r\n/(]+)", re.I | re.M)


def messagelib(a: Archive) -> None:
    """KDE messagelib: the mails of mimetreeparser's tests whose recorded part tree
    (NAME.tree) holds an encrypted or signed part; NAME.html records the rendering, and
    "decryption not possible" or the armored block shown as it is there means it was not
    opened. Left out: S/MIME and forwarded (encapsulated) crypto, which mailbot reads as
    neither the message, and test fragments without a From: address (quarantined unread)."""
    data = "mimetreeparser/autotests/data"
    for p in a.ls(data):
        name = p.rsplit("/", 1)[1]
        tree_path, html_path = f"{p}.tree", f"{p}.html"
        if (not name.endswith(".mbox") or name.startswith("smime")
                or f"{a.root}/{tree_path}" not in a.names):
            continue
        head = a.read(p).split(b"\n\n", 1)[0]
        if not re.search(rb"^From:.*@", head, re.I | re.M):
            continue
        tree = a.text(tree_path)
        encrypted, signed = "EncryptedMessagePart" in tree, "SignedMessagePart" in tree
        if not (encrypted or signed) or "EncapsulatedRfc822MessagePart" in tree:
            continue
        expect: dict[str, Any] = {"encrypted": encrypted}
        if encrypted:
            html = a.text(html_path) if f"{a.root}/{html_path}" in a.names else ""
            expect["readable"] = not ("decryption not possible" in html
                                      or "BEGIN PGP MESSAGE" in html)
        if signed:
            expect["signed"] = True
        agent = _AGENT.search(head)
        client = agent.group(1).decode().strip() if agent else ""
        hint = next((c for k, c in {"apple": "Apple Mail", "enigmail": "Enigmail 1.6",
                                    "mailman": "Mailman footer re-wrap",
                                    "mailinglist": "mailing list re-wrap"}.items()
                     if k in name), "")
        add("messagelib", p, "pgp", expect, "eml",
            f"{data}/{name}.tree (part tree of basicobjecttreeparsertest) and .html",
            client=" / ".join(x for x in (client, hint) if x) or "KMail (test data)",
            key="kdetest, unittest")
    add("messagelib", "messagecore/autotests/gnupg_home/secring.gpg", "key", {}, "key",
        "messagecore/autotests/gnupg_home (the test keyring, secret published with it)")


HYPERKITTY = {  # file: (expectation, test)
    "bad_folding.txt": ({"subject": "[<redacted>]  Sicherheit 2005: Stichworte und "
                                    "Vorschlag PC-Mitglieder; Ergänzung!"},
                        "commands/test_import.py test_folding_with_cr"),
    # The recorded subject keeps U+0085 (NEL); mailbot drops control characters from
    # subjects, so only that the mail is accepted is compared.
    "bad-subject-header.txt": ({}, "commands/test_import.py test_bad_subject_header"),
    "payload-utf8-wrong.txt": ({}, "commands/test_import.py (archived despite the payload)"),
    "non-ascii-date-header.txt": ({}, "commands/test_import.py test_ungettable_date"),
    "resent-date.txt": ({}, "commands/test_import.py test_no_date_but_resent_date"),
    "unixfrom-date.txt": ({}, "commands/test_import.py test_no_date_and_no_resent_date"),
    "bad_date_tz.txt": ({}, "commands/test_import.py test_bad_date_tz_and_no_resent_date"),
    "unconvertable_message.txt": ({}, "commands/test_import.py test_unconvertable_message"),
    "unconvertable_msg-2.txt": ({},
                                "commands/test_import.py test_another_unconvertable_message"),
    "unicode_issue.txt": ({}, "commands/test_import.py test_ungetable_message"),
    "unknown-charset.txt": ({}, "commands/test_import.py test_unknown_encoding"),
    "another-wrong-encoding.txt": ({}, "commands/test_import.py test_another_wrong_encoding"),
    "bad_content_type.txt": ({}, "commands/test_import.py test_bad_content_type"),
    "attachment-2.txt": ({}, "lib/test_incoming.py test_bytes_attachment"),
    "attachment-3.txt": ({}, "lib/test_incoming.py test_string_no_cset_attachment"),
    "attachment-4.txt": ({}, "lib/test_incoming.py "
                             "test_non_ascii_text_attachment_declared_as_ascii"),
}


def hyperkitty(a: Archive) -> None:
    """HyperKitty: list archive mail its import tests must archive despite broken dates,
    charsets, foldings and content types; here: a person's mail, read (a case or a
    quarantine entry with its reason), never dropped as machine mail."""
    for name, (expect, test) in HYPERKITTY.items():
        add("hyperkitty", f"hyperkitty/tests/testdata/{name}", "malformed",
            {**expect, "machine": False}, "eml", f"hyperkitty/tests/{test}")


READERS = {"email-reply-parser": reply_parser, "talon": talon, "flufl.bounce": flufl,
           "bounceparser": bounceparser, "mailman-pgp": mailman_pgp,
           "django-mailbox": django_mailbox, "hyperkitty": hyperkitty, "notmuch": notmuch,
           "messagelib": messagelib}


def main(argv: list[str]) -> int:
    artifacts = Path(argv[1]) if len(argv) > 1 else HERE.parents[2] / ".cache/corpus-real/artifacts"
    packages = {}
    for key, pkg in PACKAGES.items():
        path = artifacts / pkg["artifact"]
        archive = Archive(path, pkg["root"])
        before = len(MAILS)
        READERS[key](archive)
        for m in MAILS[before:]:
            assert f"{archive.root}/{m['path']}" in archive.names, m["path"]
        packages[key] = {**pkg, "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    recipe = {"packages": packages, "mails": MAILS}
    (HERE / "recipe.json").write_text(json.dumps(recipe, indent=1, ensure_ascii=False) + "\n",
                                      encoding="utf-8")
    print(f"recipe.json: {len(MAILS)} files from {len(packages)} packages")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
