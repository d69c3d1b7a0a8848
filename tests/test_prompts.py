"""Prompt files: version selection, placeholder validation, chat-turn rendering."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.answering.prompts import load_prompt, parse_prompt_file, prompts_dir
from rag.errors import PromptError

FIXTURES = Path(__file__).parent / "fixtures" / "prompts"


def write_prompt(directory: Path, filename: str, text: str) -> Path:
    path = directory / filename
    path.write_text(text, encoding="utf-8")
    return path


def test_highest_version_is_loaded_by_default() -> None:
    prompt = load_prompt("greet", FIXTURES)
    assert (prompt.version, prompt.label) == (2, "greet.v2")
    assert prompt.placeholders == {"person", "mood"}


def test_pinned_version_is_loaded() -> None:
    prompt = load_prompt("greet@v1", FIXTURES)
    assert prompt.version == 1
    assert prompt.render(person="Anna") == [{"role": "user", "content": "Say hello to Anna."}]


def test_render_keeps_literal_braces_and_inserts_values_verbatim() -> None:
    messages = load_prompt("greet", FIXTURES).render(person="{Anna}", mood="warm")
    assert messages == [
        {
            "role": "user",
            "content": 'Say hello to {Anna} in a warm way. Reply as JSON like {"greeting": "..."}.',
        }
    ]


def test_sections_become_alternating_chat_turns() -> None:
    messages = load_prompt("fewshot", FIXTURES).render(question="Wer?", passages="[1] Text.")
    assert [message["role"] for message in messages] == ["system", "user", "assistant", "user"]
    assert messages[2]["content"] == "Berlin [1]."
    assert messages[3]["content"] == "Passages:\n[1] Text.\n\nQuestion: Wer?"


def test_render_rejects_missing_and_extra_values() -> None:
    prompt = load_prompt("fewshot", FIXTURES)
    with pytest.raises(PromptError, match=r"needs a value for \{passages\}"):
        prompt.render(question="Wer?")
    with pytest.raises(PromptError, match=r"has no placeholder \{typo\}"):
        prompt.render(question="Wer?", passages="p", typo="x")


def test_unknown_name_and_version_are_one_line_errors() -> None:
    with pytest.raises(PromptError, match="no prompt 'missing'"):
        load_prompt("missing", FIXTURES)
    with pytest.raises(PromptError, match=r"no version v7 \(available: v1, v2\)"):
        load_prompt("greet@v7", FIXTURES)


HEADER = "name: bad\nversion: 1\nplaceholders: a\n---\n"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("Use {a} and {b}.", r"uses \{b\} but does not declare it"),
        ("No fields at all.", "declares placeholder 'a' but never uses it"),
        ("Stray } brace {a}", "stray brace"),
        ("Format spec {a:>10}", "only plain"),
        ("### user\n{a}\n### user\nagain", "alternate user/assistant"),
        ("### system\n{a}\n### user\nq\n### assistant\nanswer", "end with user"),
        ("### user\n{a}\n### system\nlate", "may only be the first"),
        ("preamble\n### user\n{a}", "text before its first"),
        ("### system\n\n### user\n{a}", "empty `### system`"),
    ],
)
def test_invalid_bodies_name_the_file_and_the_problem(tmp_path: Path, body: str, message: str) -> None:
    path = write_prompt(tmp_path, "bad.v1.txt", HEADER + body + "\n")
    with pytest.raises(PromptError, match=message) as error:
        parse_prompt_file(path)
    assert str(path) in str(error.value)
    assert "\n" not in str(error.value)


def test_header_must_match_file_name_and_be_complete(tmp_path: Path) -> None:
    wrong_version = write_prompt(tmp_path, "bad.v2.txt", HEADER + "{a}\n")
    with pytest.raises(PromptError, match="must be named"):
        parse_prompt_file(wrong_version)
    no_placeholders = write_prompt(tmp_path, "bad.v1.txt", "name: bad\nversion: 1\n---\nhi\n")
    with pytest.raises(PromptError, match="lacks `placeholders:`"):
        parse_prompt_file(no_placeholders)
    unknown_key = write_prompt(tmp_path, "bad.v1.txt", "name: bad\nversion: 1\nplaceholder: a\n---\n{a}\n")
    with pytest.raises(PromptError, match="header line 3"):
        parse_prompt_file(unknown_key)
    no_separator = write_prompt(tmp_path, "bad.v1.txt", "name: bad\nversion: 1\nplaceholders:\nhi\n")
    with pytest.raises(PromptError, match="no `---` line"):
        parse_prompt_file(no_separator)


def test_empty_placeholder_list_is_allowed(tmp_path: Path) -> None:
    write_prompt(tmp_path, "plain.v1.txt", "name: plain\nversion: 1\nplaceholders:\n---\nJust text.\n")
    assert load_prompt("plain", tmp_path).render() == [{"role": "user", "content": "Just text."}]


def test_prompts_dir_points_at_the_repository_prompts_folder() -> None:
    assert prompts_dir() == Path(__file__).parent.parent / "prompts"


def test_shipped_prompts_all_validate() -> None:
    """Every prompt the lead writes into prompts/ must load; an empty folder passes trivially."""
    for path in sorted(prompts_dir().glob("*.v*.txt")):
        prompt = parse_prompt_file(path)
        assert prompt.path == path
