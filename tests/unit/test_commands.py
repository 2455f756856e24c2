from patchpilot.logic.commands import install_command_comment, parse_command_comment


def test_install_command_comment_fits_send_command_limit_for_longest_names() -> None:
    comment = install_command_comment("r" * 56, "s" * 32)
    assert len(comment) <= 100
    assert parse_command_comment(comment) == ("r" * 56, "s" * 32)


def test_parse_command_comment_rejects_foreign_comments() -> None:
    assert parse_command_comment("Patch Tuesday run by ops") is None
