"""Safe file names, name sources, and claiming a free name atomically."""

from __future__ import annotations

import os
import tempfile
import threading
import unicodedata
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from regisseur.actors.downloads import _noreplace
from regisseur.actors.downloads import names as naming
from regisseur.actors.downloads.names import (
    MAX_NAME_BYTES,
    NameNumbers,
    display_name_from_url,
    is_inside,
    move_into_place,
    name_from_content_disposition,
    name_from_url,
    numbered,
    safe_filename,
    split_extension,
)

RESERVED = {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$", "CLOCK$"} | {
    f"{d}{n}" for d in ("COM", "LPT") for n in "0123456789¹²³"
}


def assert_safe(name: str, limit: int = MAX_NAME_BYTES) -> None:
    """Every rule a safe name must satisfy."""
    assert name, "empty name"
    assert "/" not in name and "\\" not in name and "\0" not in name
    assert name not in (".", "..")
    assert not name.startswith("."), name
    assert name == name.strip(), repr(name)
    assert not name.endswith("."), name
    assert len(name.encode("utf-8")) <= limit
    assert not any(unicodedata.category(c) in ("Cc", "Cf", "Cs", "Zl", "Zp") for c in name)
    assert not any(c in '<>:"|?*' for c in name)
    assert name.split(".", 1)[0].rstrip().upper() not in RESERVED
    assert not os.path.isabs(name)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("report.pdf", "report.pdf"),
        ("../../etc/passwd", "passwd"),
        ("..\\..\\windows\\system32\\evil.dll", "evil.dll"),
        ("/etc/passwd", "passwd"),
        ("C:\\Users\\x\\file.txt", "file.txt"),
        ("dir/..", "dir"),
        ("..", "download"),
        (".", "download"),
        ("", "download"),
        ("   ", "download"),
        ("/", "download"),
        (".bashrc", "bashrc"),
        ("...hidden.txt", "hidden.txt"),
        ("name. . .", "name"),
        ("  spaced  .txt  ", "spaced  .txt"),
        ("CON", "_CON"),
        ("con.txt", "_con.txt"),
        ("nul.tar.gz", "_nul.tar.gz"),
        ("COM1", "_COM1"),
        ("lpt9.log", "_lpt9.log"),
        ("CONSOLE.txt", "CONSOLE.txt"),
        ('a<b>c:d"e|f?g*h.txt', "a_b_c_d_e_f_g_h.txt"),
        ("tab\there\nnew.txt", "tab here new.txt"),
        ("bell\x07\x00.txt", "bell  .txt"),
        ("evil\u202etxt.exe", "eviltxt.exe"),
        ("zero\u200bwidth.txt", "zerowidth.txt"),
        ("e\u0301t\u00e9.txt", "\u00e9t\u00e9.txt"),
        ("日本語のファイル.txt", "日本語のファイル.txt"),
    ],
)
def test_safe_filename_examples(raw: str, expected: str) -> None:
    result = safe_filename(raw)
    assert result == expected
    assert_safe(result)


def test_non_string_and_fallback() -> None:
    assert safe_filename(None) == "download"
    assert safe_filename(b"bytes.txt") == "download"
    assert safe_filename("..", fallback="display name.bin") == "display name.bin"
    assert safe_filename("", fallback="../x") == "x"
    assert safe_filename("", fallback="..") == "download"


def test_long_names_are_cut_by_bytes_keeping_the_extension() -> None:
    name = safe_filename("é" * 300 + ".tar.gz")
    assert name.endswith(".tar.gz")
    assert len(name.encode("utf-8")) <= MAX_NAME_BYTES
    assert name.startswith("é")
    assert_safe(name)
    cut = safe_filename("x" * 300, max_bytes=100)
    assert cut == "x" * 100


def test_max_bytes_must_be_sane() -> None:
    with pytest.raises(ValueError, match="max_bytes"):
        safe_filename("x", max_bytes=3)


def test_split_extension() -> None:
    assert split_extension("a.txt") == ("a", ".txt")
    assert split_extension("a.tar.gz") == ("a", ".tar.gz")
    assert split_extension("noext") == ("noext", "")
    assert split_extension("a.b c") == ("a.b c", "")
    assert split_extension("a." + "x" * 30) == ("a." + "x" * 30, "")


def test_numbered() -> None:
    assert numbered("report.pdf", 1) == "report (1).pdf"
    assert numbered("archive.tar.gz", 2) == "archive (2).tar.gz"
    assert numbered("README", 3) == "README (3)"
    long = "y" * 255
    assert len(numbered(long, 12).encode()) <= MAX_NAME_BYTES
    assert numbered(long, 12).endswith(" (12)")


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ('attachment; filename="report.pdf"', "report.pdf"),
        ("attachment; filename=plain.txt", "plain.txt"),
        ("attachment; filename*=UTF-8''na%C3%AFve%20file.txt", "naïve file.txt"),
        (
            "attachment; filename=\"fallback.txt\"; filename*=UTF-8''%E2%82%AC%20rates.txt",
            "€ rates.txt",
        ),
        ("attachment; filename*=iso-8859-1'en'%A3%20rates.txt", "£ rates.txt"),
        ('attachment; filename="a \\"quoted\\" name.txt"', 'a "quoted" name.txt'),
        ('attachment; note="x; filename=evil.sh"; filename="good.txt"', "good.txt"),
        ('attachment; filename="../../etc/passwd"', "../../etc/passwd"),
        # a raw UTF-8 name arrives decoded as Latin-1 by http.client
        ('attachment; filename="caf\u00c3\u00a9.txt"', "café.txt"),
        ("attachment; filename*=UTF-8''%FF%FE.txt; filename=ok.txt", "ok.txt"),
        ("attachment; filename*=koi8-r''x.txt", None),
        ("inline", None),
        ("", None),
        (None, None),
        ('attachment; filename="unterminated', "unterminated"),
        ('filename="no-type.txt"', "no-type.txt"),
    ],
)
def test_content_disposition(header: str | None, expected: str | None) -> None:
    assert name_from_content_disposition(header) == expected


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://h/files/report.pdf", "report.pdf"),
        ("http://h/files/a%20b.txt?x=1#frag", "a b.txt"),
        ("http://h/files/", None),
        ("http://h", None),
        ("http://h/..%2F..%2Fetc%2Fpasswd", "../../etc/passwd"),
        ("http://[::1/x", None),
        # Before: a credential in the last segment became the file's name (shown on
        # the done line and stdout, listed by ls in a shared directory).
        ("http://h/dl/file.bin;token=s3cr3t", "file.bin;token=[REDACTED]"),
        ("http://h/dl/access_token=s3cr3t", "access_token=[REDACTED]"),
        ("http://h/dl/%74oken%3Ds3cr3t", "token=[REDACTED]"),
        ("http://h/dl/a.bin;X-Amz-Signature=s1g", "a.bin;X-Amz-Signature=[REDACTED]"),
    ],
)
def test_name_from_url(url: str, expected: str | None) -> None:
    assert name_from_url(url) == expected


def test_move_into_place_never_overwrites(tmp_path: Path) -> None:
    (tmp_path / "file.txt").write_text("old")
    part = tmp_path / "x.part"
    part.write_text("new")
    target = move_into_place(part, tmp_path, "file.txt")
    assert target.name == "file (1).txt"
    assert (tmp_path / "file.txt").read_text() == "old"
    assert target.read_text() == "new"
    assert not part.exists()


def test_move_into_place_skips_dangling_symlinks(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    inside = tmp_path / "inside"
    inside.mkdir()
    (inside / "file.txt").symlink_to(outside / "nowhere")
    part = inside / "x.part"
    part.write_text("data")
    target = move_into_place(part, inside, "file.txt")
    assert target == inside.resolve() / "file (1).txt"
    assert not (outside / "nowhere").exists()


def test_move_into_place_without_hard_links(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_links(*args: object, **kwargs: object) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    monkeypatch.setattr(_noreplace, "_renameat2", lambda: None)
    (tmp_path / "f.bin").write_text("old")
    part = tmp_path / "p.part"
    part.write_text("new")
    target = move_into_place(part, tmp_path, "f.bin")
    assert target.name == "f (1).bin"
    assert target.read_text() == "new"
    assert (tmp_path / "f.bin").read_text() == "old"


@pytest.mark.parametrize("renames", [True, False], ids=["rename-noreplace", "hard-link"])
def test_move_into_place_moves_without_replacing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, renames: bool
) -> None:
    if not renames:
        monkeypatch.setattr(_noreplace, "_renameat2", lambda: None)
    (tmp_path / "taken.txt").symlink_to(tmp_path / "nowhere")
    part = tmp_path / "p.part"
    part.write_text("new")
    target = move_into_place(part, tmp_path, "taken.txt")
    assert target.name == "taken (1).txt"
    assert target.read_text() == "new"
    assert not part.exists()
    assert (tmp_path / "taken.txt").is_symlink()
    assert not (tmp_path / "nowhere").exists()


@pytest.mark.parametrize("way", ["rename-noreplace", "hard-link", "exclusive-create"])
def test_move_into_place_takes_a_name_that_already_is_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, way: str
) -> None:
    """Whatever way names are claimed, a taken name that ``same`` accepts is
    returned and the source removed; the names before it are only tested."""

    def no_links(*args: object, **kwargs: object) -> None:
        raise PermissionError(1, "Operation not permitted")

    if way != "rename-noreplace":
        monkeypatch.setattr(_noreplace, "_renameat2", lambda: None)
    if way == "exclusive-create":
        monkeypatch.setattr(os, "link", no_links)
    (tmp_path / "f.bin").write_text("other")
    (tmp_path / "f (1).bin").write_text("mine")
    part = tmp_path / "p.part"
    part.write_text("mine")
    asked: list[str] = []

    def same(target: Path) -> bool:
        asked.append(target.name)
        return target.read_text() == part.read_text()

    target = move_into_place(part, tmp_path, "f.bin", same=same)
    assert target.name == "f (1).bin"
    assert asked == ["f.bin", "f (1).bin"]
    assert not part.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f (1).bin", "f.bin"]


def test_concurrent_claims_get_distinct_names(tmp_path: Path) -> None:
    count = 8
    parts = []
    for index in range(count):
        part = tmp_path / f"{index}.part"
        part.write_text(str(index))
        parts.append(part)
    barrier = threading.Barrier(count)
    results: list[Path] = []
    lock = threading.Lock()

    def claim(part: Path) -> None:
        barrier.wait(5)
        target = move_into_place(part, tmp_path, "same.txt")
        with lock:
            results.append(target)

    threads = [threading.Thread(target=claim, args=(p,)) for p in parts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert len({r.name for r in results}) == count
    contents = sorted(r.read_text() for r in results)
    assert contents == sorted(str(i) for i in range(count))


def test_is_inside(tmp_path: Path) -> None:
    assert is_inside(tmp_path, tmp_path / "a")
    assert not is_inside(tmp_path, tmp_path / ".." / "a")
    assert not is_inside(tmp_path, tmp_path)


# -- properties ----------------------------------------------------------------

names = st.one_of(
    st.text(),
    st.text(alphabet=st.sampled_from(list('./\\ .:*?<>|"\x00\x1f\u202e\u200b\ud800ab'))),
    st.text(min_size=200, max_size=400),
    st.sampled_from(sorted(RESERVED)).flatmap(
        lambda r: st.tuples(st.just(r), st.sampled_from(["", ".txt", " .x", ".tar.gz"])).map(
            "".join
        )
    ),
)


@settings(max_examples=400, deadline=None)
@given(names)
def test_safe_filename_is_always_one_safe_component(raw: str) -> None:
    name = safe_filename(raw)
    assert_safe(name)
    assert safe_filename(name) == name  # idempotent
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        path = root / name
        assert is_inside(root, path)
        assert path.parent == root
        path.write_bytes(b"")  # the file system accepts it as one new entry
        assert [p.name for p in root.iterdir()] == [name]


@settings(max_examples=200, deadline=None)
@given(names, st.integers(min_value=1, max_value=10_000))
def test_numbered_names_stay_safe(raw: str, number: int) -> None:
    name = numbered(safe_filename(raw), number)
    assert_safe(name)
    assert f"({number})" in name


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_content_disposition_never_raises(header: str) -> None:
    result = name_from_content_disposition("attachment; " + header)
    assert result is None or isinstance(result, str)


@settings(max_examples=200, deadline=None)
@given(st.text(), st.integers(min_value=16, max_value=255))
def test_reserved_room_is_respected(raw: str, limit: int) -> None:
    assert_safe(safe_filename(raw, max_bytes=limit), limit)


@pytest.mark.parametrize("bad", ["../escape.txt", "sub/dir.txt", ".."])
def test_move_into_place_refuses_names_that_leave_the_directory(tmp_path: Path, bad: str) -> None:
    (tmp_path / "sub").mkdir()
    part = tmp_path / "x.part"
    part.write_text("data")
    with pytest.raises(ValueError, match="would leave"):
        move_into_place(part, tmp_path / "sub", bad)
    assert part.exists()


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://h/dir/file.bin?X-Amz-Signature=s1&token=t", "file.bin"),
        ("http://h/dir/", "dir"),
        ("http://u:pw@h/a%20b.txt#frag", "a b.txt"),
        ("http://u:pw@h/", "h"),
        ("http://h/x;token=t0k", "x;token=[REDACTED]"),
        ("http://[::1", "http://[::1"),
    ],
)
def test_display_name_from_url_never_shows_the_query(url: str, shown: str) -> None:
    assert display_name_from_url(url) == shown


@pytest.mark.parametrize(
    ("url", "shown"),
    [("http://h/a/%20%20", "a"), ("http://h/%09/", "h"), ("http://h/%20", "h")],
)
def test_display_name_from_url_is_never_blank(url: str, shown: str) -> None:
    """Before: ``'  '`` for ``http://h/a/%20%20``, which ``submit()`` refuses
    (``display_name must not be empty``), ending a whole CLI run."""
    assert display_name_from_url(url) == shown


def test_an_ascii_name_is_cleaned_as_each_of_its_characters_would_be() -> None:
    """The all-ASCII fast path (one ``str.translate``) against the rule
    applied a character at a time, for every ASCII character, alone and
    inside a name."""
    for code in range(128):
        char = chr(code)
        assert naming._clean(char) == naming._clean_char(char), repr(char)
        name = f"a{char}b.txt"
        assert naming._clean(name) == "".join(naming._clean_char(c) for c in name), repr(name)
    assert safe_filename("rep\x00ort\x1f|v2?.pdf") == "rep ort _v2_.pdf"
    assert safe_filename("caf\u00e9\u200b.txt") == "café.txt"  # not ASCII: per character


def test_many_files_of_one_name_are_placed_in_linear_time(
    tmp_path: Path, renames: list[Path]
) -> None:
    """Before: the n-th file of one name tried every taken name before it
    (``download``, ``download (1)``, ...): 3,000 files named ``download``
    (``/download?id=N``) cost 4.5 million renames, 58 s. With a
    ``NameNumbers`` the next number is remembered: a few tries a file. A
    name freed meanwhile is taken again first."""
    numbers = NameNumbers()
    placed = []
    for number in range(300):
        part = tmp_path / f"{number}.part"
        part.write_text(str(number))
        placed.append(move_into_place(part, tmp_path, "download", numbers=numbers))
    assert [p.name for p in placed[:3]] == ["download", "download (1)", "download (2)"]
    assert len({p.name for p in placed}) == 300
    assert all(p.read_text() == str(n) for n, p in enumerate(placed))
    assert len(renames) < 3 * 300, len(renames)  # before: 300 * 301 / 2 = 45,150

    (tmp_path / "download").unlink()  # freed: the next one takes it
    part = tmp_path / "again.part"
    part.write_text("again")
    assert move_into_place(part, tmp_path, "download", numbers=numbers).name == "download"
    part.write_text("next")
    assert move_into_place(part, tmp_path, "download", numbers=numbers).name == "download (300)"
