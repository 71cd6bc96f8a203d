"""A block file handed to a register feeds one register, once, across crashes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from regkit import ADMIN, LG, PREF, make_block

from jukicore.codes import CodeBlock
from jukicore.errors import ConflictError, FileError
from jukicore.register import Actor, Register, create_register


def _handover(path: Path) -> Path:
    return path.with_name(f".{path.name}.handover")


def test_block_file_moves_into_the_pool_and_is_left_empty(empty_register: Register,
                                                          tmp_path: Path) -> None:
    path = tmp_path / "city.block"
    make_block(40).save(path)
    pool = empty_register.codes_remaining()
    assert empty_register.import_code_block_file(path, actor=ADMIN) == 40
    assert empty_register.codes_remaining() == pool + 40
    assert len(CodeBlock.load(path)) == 0
    assert not os.path.lexists(_handover(path))
    # the emptied file feeds nothing more: importing it again adds no code
    assert empty_register.import_code_block_file(path, actor=ADMIN) == 0
    assert empty_register.codes_remaining() == pool + 40


def test_a_run_killed_after_the_handover_is_completed_by_the_next(
        empty_register: Register, tmp_path: Path) -> None:
    path = tmp_path / "city.block"
    make_block(30).save(path)
    os.replace(path, _handover(path))  # what a run killed right after the hand-over leaves
    pool = empty_register.codes_remaining()
    assert empty_register.import_code_block_file(path, actor=ADMIN) == 30
    assert empty_register.codes_remaining() == pool + 30
    assert len(CodeBlock.load(path)) == 0 and not os.path.lexists(_handover(path))


def test_a_run_killed_after_the_import_does_not_import_twice(
        empty_register: Register, tmp_path: Path) -> None:
    path = tmp_path / "city.block"
    block = make_block(25)
    block.save(path)
    os.replace(path, _handover(path))
    pool = empty_register.codes_remaining()
    empty_register.import_code_block(block, actor=ADMIN)  # the import went through, then a kill
    assert empty_register.import_code_block_file(path, actor=ADMIN) == 0
    assert empty_register.codes_remaining() == pool + 25
    assert len(CodeBlock.load(path)) == 0 and not os.path.lexists(_handover(path))


def test_a_block_being_handed_over_cannot_feed_a_second_register(
        empty_register: Register, tmp_path: Path) -> None:
    path = tmp_path / "city.block"
    make_block(20).save(path)
    os.replace(path, _handover(path))  # handed to the first register, then a kill
    # the file is gone from its name: a second register cannot load its codes...
    with pytest.raises(FileError):
        CodeBlock.load(path)
    # ...and a register of another municipality cannot complete the hand-over
    chuo = Actor.operator("admin", "131024", "admin")
    with create_register(str(tmp_path / "other.db"), lg_code="131024", prefecture=PREF,
                         municipality="中央区", actor=chuo) as other:
        before = other.content_digest()
        with pytest.raises(ConflictError):
            other.import_code_block_file(path, actor=chuo)
        assert other.content_digest() == before
    assert os.path.lexists(_handover(path))
    pool = empty_register.codes_remaining()
    assert empty_register.import_code_block_file(path, actor=ADMIN) == 20
    assert empty_register.lg_code == LG and empty_register.codes_remaining() == pool + 20
