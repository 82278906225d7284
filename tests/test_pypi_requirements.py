"""The `pip:` list read as pip reads it: requirement kinds, index options, and refusals that
name the line (app/core/pypi_requirements.py)."""

from __future__ import annotations

import pytest

from app.core.pypi_requirements import PipLine, VcsRef, parse_pip_section
from app.errors import InputError

LOC: list[str | int] = ["body", "environment", "dependencies", 3, "pip"]


def one(text: str) -> PipLine:
    (line,) = parse_pip_section([text], LOC).lines
    return line


@pytest.mark.parametrize(
    "text, name, requirement",
    [
        ("requests==2.32.3", "requests", "requests==2.32.3"),
        ("Django>=4,<5", "django", "Django<5,>=4"),
        ("uvicorn[standard]>=0.30", "uvicorn", "uvicorn[standard]>=0.30"),
        ('tomli; python_version < "3.11"', "tomli", 'tomli; python_version < "3.11"'),
        ("Typing_Extensions", "typing-extensions", "Typing_Extensions"),
    ],
)
def test_index_requirements(text: str, name: str, requirement: str) -> None:
    line = one(text)
    assert (line.kind, line.name, line.requirement, line.text) == ("index", name, requirement, text)


def test_direct_reference() -> None:
    line = one("pkg @ https://files.example.org/pkg-1.0.tar.gz")
    assert line.kind == "url" and line.name == "pkg"
    assert line.url == "https://files.example.org/pkg-1.0.tar.gz"


@pytest.mark.parametrize(
    "text, name, repository, ref, editable",
    [
        (
            "git+https://github.com/CompVis/taming-transformers.git@master#egg=taming-transformers",
            "taming-transformers",
            "https://github.com/CompVis/taming-transformers.git",
            "master",
            False,
        ),
        (
            "-e git+https://github.com/openai/CLIP.git@main#egg=clip",
            "clip",
            "https://github.com/openai/CLIP.git",
            "main",
            True,
        ),
        ("git+https://gitlab.com/a/b.git", None, "https://gitlab.com/a/b.git", None, False),
        (
            "clip @ git+https://github.com/openai/CLIP.git@a1b2c3",
            "clip",
            "https://github.com/openai/CLIP.git",
            "a1b2c3",
            False,
        ),
    ],
)
def test_vcs_requirements(
    text: str, name: str | None, repository: str, ref: str | None, editable: bool
) -> None:
    line = one(text)
    assert line.kind == "vcs" and line.name == name and line.editable is editable
    assert line.vcs == VcsRef("git", repository, ref)


@pytest.mark.parametrize(
    "text",
    [
        "-e .",
        ".",
        "./src/mypkg",
        "../shared",
        "-r requirements.txt",
        "--requirement=req.txt",
        "file:///home/me/pkg",
        "mypkg @ file:///home/me/pkg",
        "-e ./path",
        "/opt/code",
    ],
)
def test_the_researchers_own_code_is_local(text: str) -> None:
    section = parse_pip_section([text, "requests"], LOC)
    assert section.lines[0].kind == "local" and section.lines[0].text == text
    assert [line.text for line in section.resolvable] == ["requests"]


def test_index_options_choose_the_indexes() -> None:
    section = parse_pip_section(
        [
            "--index-url https://download.pytorch.org/whl/cu121",
            "--extra-index-url=https://pypi.org/simple/",
            "-i https://download.pytorch.org/whl/cu121",
            "torch==2.3.1",
        ],
        LOC,
    )
    assert section.index_url == "https://download.pytorch.org/whl/cu121"
    assert section.extra_index_urls == ("https://pypi.org/simple",)
    assert [line.name for line in section.lines] == ["torch"]


@pytest.mark.parametrize(
    "items, index, message",
    [
        (["requests", "--pre"], 1, "only --index-url"),
        (["--no-binary :all:"], 0, "only --index-url"),
        (["--index-url"], 0, "names no URL"),
        (["--index-url ftp://mirror/simple"], 0, "http(s)"),
        (["-i https://a/simple", "-i https://b/simple"], 1, "second --index-url"),
        (["requests>=>1"], 0, "not a requirement pip can read"),
        (["requests==2 --hash=sha256:00"], 0, "--hash"),
        (["-e requests"], 0, "-e needs a local path"),
        (["pkg @ ftp://host/pkg.tar.gz"], 0, "http(s) URL"),
        (["git+file:///srv/repo.git"], 0, "must use https"),
        ([5], 0, "non-empty string"),
        ([""], 0, "non-empty string"),
    ],
)
def test_refusals_name_the_line(items: list[object], index: int, message: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_pip_section(items, LOC)
    assert caught.value.loc == [*LOC, index]
    assert message in str(caught.value)


def test_the_section_must_be_a_list() -> None:
    with pytest.raises(InputError) as caught:
        parse_pip_section("requests", LOC)
    assert caught.value.loc == LOC


def test_vcs_subdirectory_is_kept_for_the_resolver() -> None:
    from app.core.pypi_spec import uv_requirement

    line = one("git+https://github.com/org/mono.git@v2#egg=part&subdirectory=libs/part")
    assert line.vcs == VcsRef("git", "https://github.com/org/mono.git", "v2", "libs/part")
    assert uv_requirement(line) == (
        "part @ git+https://github.com/org/mono.git@v2#subdirectory=libs/part"
    )
    named = one("part @ git+https://github.com/org/mono.git@v2#subdirectory=libs/part")
    assert uv_requirement(named) == uv_requirement(line)
    with pytest.raises(InputError, match="plain relative path"):
        one("git+https://github.com/org/mono.git#egg=x&subdirectory=../../etc")


@pytest.mark.parametrize(
    "text",
    [
        "git+https://github.com/a/b@v1#subdirectory=x\n-r /etc/passwd",
        "requests\n--find-links https://evil.example/",
        "requests\x00",
        "git+https://github.com/a/b@v1#egg=b&subdirectory=x y",
    ],
)
def test_a_line_cannot_smuggle_another_line_to_uv(text: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_pip_section([text], LOC)
    assert caught.value.loc == [*LOC, 0]


def test_a_url_urlsplit_cannot_read_is_a_422_not_a_500() -> None:
    for text in ("--index-url http://[x", "thing @ http://[::1/x.whl", "git+https://[x/y.git"):
        with pytest.raises(InputError):
            parse_pip_section([text], LOC)
