"""DKIM l=: a signature over the start of the body vouches for nothing after it."""

from __future__ import annotations

import pytest

from tests.security.conftest import World, command_mail, mail, now_date, sign


def signed_with_length(ref: str, content_type: str, body: str) -> bytes:
    """A staff command mail of this MIME shape, signed with l= over its whole body (the
    Content-Type header, as many signers do, left out of h=)."""
    raw = mail([("From", "Alice <alice@example.org>"), ("To", "security@example.org"),
                ("Subject", f"Re: [{ref}] XSS in /search"), ("Date", now_date()),
                ("Message-ID", f"<len-{abs(hash((content_type, body)))}@example.org>")],
               body, content_type)
    return sign(raw, length=True)


def appended(raw: bytes, text: str, content_type: str | None = None) -> bytes:
    """`raw` with `text` after the signed body and, when given, a new Content-Type on top
    (so the parser reads the appended parts, and the signed ones become a preamble)."""
    raw = raw + text.replace("\n", "\r\n").encode()
    if content_type is not None:
        raw = f"Content-Type: {content_type}\r\n".encode() + raw.replace(
            b"\r\nContent-Type: ", b"\r\nX-Old-Content-Type: ", 1)
    return raw


def multipart(kind: str, boundary: str, text: str) -> str:
    return (f"--{boundary}\nContent-Type: text/plain; charset=utf-8\n\n{text}\n"
            f"--{boundary}--\n")


SHAPES = {
    "text/plain": ("text/plain; charset=utf-8", "#status triaged\n",
                   "#status rejected\n#reply Closed, nothing to see.\n", None),
    "multipart/mixed": ('multipart/mixed; boundary="a"', multipart("mixed", "a", "Thanks."),
                        multipart("mixed", "b", "#status rejected"),
                        'multipart/mixed; boundary="b"'),
    "multipart/alternative": ('multipart/alternative; boundary="a"',
                              multipart("alternative", "a", "Thanks."),
                              multipart("alternative", "b", "#status rejected"),
                              'multipart/alternative; boundary="b"'),
    "part after the closing boundary": ('multipart/mixed; boundary="a"',
                                        multipart("mixed", "a", "Thanks."),
                                        "--a\nContent-Type: text/plain\n\n#status rejected\n"
                                        "--a--\n", None),
}


@pytest.mark.parametrize("shape", list(SHAPES))
async def test_text_after_the_signed_length_is_never_obeyed(world: World, shape: str) -> None:
    """The attacker takes a staff mail signed with a body length (l=) and appends, after
    the signed bytes, text or MIME parts carrying commands (re-pointing the unsigned
    Content-Type at them where the shape needs it)."""
    ref = await world.open_case()
    content_type, body, extra, new_type = SHAPES[shape]
    forged = appended(signed_with_length(ref, content_type, body), extra, new_type)
    await world.send(forged)
    await world.settled()
    status, reason, kind, trusted = world.verdict(forged)
    assert status == "done"
    assert (kind, trusted) == ("untrusted-staff", 0)
    assert reason is not None and "l= signs only the start of the body" in reason
    assert world.state(ref) == "new"
    assert "reporter" not in world.queued_for(forged)  # no #reply reached the reporter


async def test_a_length_that_covers_the_whole_body_still_proves(world: World) -> None:
    """The control: l= equal to the body's length leaves nothing unsigned."""
    ref = await world.open_case()
    raw = signed_with_length(ref, "text/plain; charset=utf-8", "#status triaged\n")
    await world.send(raw)
    await world.settled()
    assert world.verdict(raw)[2:] == ("staff", 1)
    assert world.state(ref) == "triaged"


async def test_an_unsigned_command_from_a_staff_address_is_untrusted(world: World) -> None:
    """The attacker simply forges From: alice, with no signature at all."""
    ref = await world.open_case()
    raw = command_mail(ref)
    await world.send(raw)
    await world.settled()
    assert world.verdict(raw)[2:] == ("untrusted-staff", 0)
    assert world.state(ref) == "new"
