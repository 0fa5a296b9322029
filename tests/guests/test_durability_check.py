"""Unit checks of durability_check.py on images built here: it passes what a correct device leaves
behind after a kill and finds each kind of loss. Run: python3 -m unittest test_durability_check."""

import contextlib
import io
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import durability_check as dc  # noqa: E402

EVERY = 8
BLOCKS = 600  # more than two 1 MiB chunks of the checker


class ImageTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.path = os.path.join(self.dir.name, "disk.img")

    def tearDown(self):
        self.dir.cleanup()

    def image(self, written, blocks=BLOCKS, edit=None):
        """Blocks 0..written-1 written, the rest zeros; edit(bytearray) changes it before saving."""
        data = bytearray(blocks * dc.BLOCK)
        for seq in range(written):
            data[seq * dc.BLOCK:(seq + 1) * dc.BLOCK] = dc.make_block(seq)
        if edit:
            edit(data)
        with open(self.path, "wb") as f:
            f.write(data)

    def check(self, flushed):
        return dc.check_image(self.path, flushed, EVERY)

    def assert_passes(self, flushed):
        report = self.check(flushed)
        self.assertEqual(report.failures, [], report.summary())
        return report

    def assert_fails(self, flushed, *fragments):
        report = self.check(flushed)
        self.assertGreater(report.failure_count, 0, report.summary())
        text = "\n".join(report.failures)
        for fragment in fragments:
            self.assertIn(fragment, text)
        return report


def zero(start, end):
    def edit(data):
        data[start:end] = bytes(end - start)
    return edit


def block_at(index):
    return index * dc.BLOCK


class Format(unittest.TestCase):
    def test_every_line_carries_magic_sequence_number_index_and_check(self):
        sector = dc.make_sector(0x1234, 5)
        self.assertEqual(len(sector), dc.SECTOR)
        self.assertEqual(len(dc.make_block(7)), dc.BLOCK)
        magic, seq, line, check = dc.LINE.unpack_from(sector, 64)[:4]
        self.assertEqual((magic, seq, line), (b"kvmlDUR1", 0x1234, 41))
        self.assertEqual(check, (0x1234 * 0x9E3779B97F4A7C15 ^ 42 * 0xC2B2AE3D27D4EB4F) % 2**64)

    def test_a_sector_is_recognised_only_where_it_belongs_and_whole(self):
        sector = dc.make_sector(0x1234, 5)
        self.assertEqual(dc.sector_state(sector, 5), 0x1234)
        self.assertEqual(dc.sector_state(sector, 4), "bad")
        self.assertEqual(dc.sector_state(dc.ZERO_SECTOR, 0), "zero")
        self.assertEqual(dc.sector_state(sector[:64] + dc.make_sector(9, 5)[64:], 5), "bad")
        flipped = bytearray(sector)
        flipped[500] ^= 0x80
        self.assertEqual(dc.sector_state(bytes(flipped), 5), "bad")

    def test_runs_of_sector_states_are_described_in_one_line(self):
        self.assertEqual(dc.describe([3, 3, "zero", "zero", "bad", 9, 9, 9], 3),
                         "sectors 0-1 written, sectors 2-3 zero, sector 4 bad, sectors 5-7 hold block 9")


class Passes(ImageTest):
    def test_flushed_blocks_intact_and_the_rest_zero(self):
        self.image(written=64)
        report = self.assert_passes(flushed=63)
        self.assertEqual(report.intact, 64)
        self.assertEqual(report.blocks, BLOCKS)

    def test_up_to_k_unflushed_blocks_may_be_written_or_missing(self):
        self.image(written=64 + EVERY)
        report = self.assert_passes(flushed=63)
        self.assertEqual(report.unflushed_written, EVERY)

    def test_an_unflushed_block_may_be_torn(self):
        self.image(written=67, edit=zero(block_at(66) + 3 * dc.SECTOR, block_at(67)))
        report = self.assert_passes(flushed=63)
        self.assertEqual((report.unflushed_written, report.unflushed_partial), (2, 1))

    def test_a_full_disk(self):
        self.image(written=BLOCKS)
        self.assert_passes(flushed=BLOCKS - 1)


class FindsLoss(ImageTest):
    def test_a_zeroed_flushed_block(self):
        self.image(written=64, edit=zero(block_at(10), block_at(11)))
        report = self.assert_fails(63, "flushed block 10 is lost: all zeros")
        self.assertEqual(report.failure_count, 1)

    def test_the_last_flushed_block_zeroed(self):
        self.image(written=64, edit=zero(block_at(63), block_at(64)))
        self.assert_fails(63, "flushed block 63 is lost")

    def test_a_torn_flushed_block(self):
        self.image(written=64, edit=zero(block_at(20) + 4 * dc.SECTOR, block_at(21)))
        self.assert_fails(63, "flushed block 20 is not intact: sectors 0-3 written, sectors 4-7 zero")

    def test_a_flipped_bit_in_a_flushed_block(self):
        def flip(data):
            data[block_at(5) + 2 * dc.SECTOR + 100] ^= 0x01
        self.image(written=64, edit=flip)
        self.assert_fails(63, "flushed block 5 is not intact: sectors 0-1 written, sector 2 bad, sectors 3-7 written")

    def test_a_flushed_block_holding_another_blocks_data(self):
        def misdirect(data):
            data[block_at(7):block_at(8)] = dc.make_block(9)
        self.image(written=64, edit=misdirect)
        self.assert_fails(63, "flushed block 7 is not intact: sectors 0-7 hold block 9")

    def test_a_stale_sector_in_an_unflushed_block(self):
        def stale(data):
            data[block_at(65):block_at(65) + dc.SECTOR] = dc.make_sector(3, 0)
        self.image(written=64, edit=stale)
        self.assert_fails(63, "unflushed block 65 holds what the guest never wrote there")

    def test_a_write_beyond_what_can_be_in_flight(self):
        def stray(data):
            data[block_at(500):block_at(501)] = dc.make_block(500)
        self.image(written=64, edit=stray)
        self.assert_fails(63, "block 500 was written although the guest reported only up to 63")

    def test_a_write_far_beyond_in_a_sparse_image(self):
        with open(self.path, "wb") as f:
            f.truncate(4096 * dc.BLOCK)
            for seq in range(16):
                f.write(dc.make_block(seq))
            f.seek(block_at(3000))
            f.write(dc.make_block(3000))
        report = self.assert_fails(15, "block 3000 was written although the guest reported only up to 15")
        self.assertEqual((report.failure_count, report.intact, report.blocks), (1, 16, 4096))

    def test_a_flushed_block_in_a_hole_of_a_sparse_image(self):
        with open(self.path, "wb") as f:
            f.truncate(4096 * dc.BLOCK)
            f.write(dc.make_block(0))
            f.seek(block_at(2))
            f.write(dc.make_block(2))
        self.assert_fails(2, "flushed block 1 is lost: all zeros")

    def test_flushed_beyond_the_end_of_the_image(self):
        self.image(written=10, blocks=10)
        self.assert_fails(10, "the image has only 10 blocks")

    def test_many_losses_are_counted_and_few_reported(self):
        self.image(written=64, edit=zero(0, block_at(64)))
        report = self.assert_fails(63)
        self.assertEqual(report.failure_count, 64)
        self.assertEqual(len(report.failures), dc.MAX_REPORTED)

    def test_the_command_exits_1_and_says_fail(self):
        args = [self.path, "--flushed", "15", "--every", str(EVERY)]
        self.image(written=16, edit=zero(block_at(3), block_at(4)))
        with contextlib.redirect_stdout(io.StringIO()) as out:
            self.assertEqual(dc.main(args), 1)
        self.assertIn("FAIL: flushed block 3 is lost", out.getvalue())
        self.assertIn("checked: FAILED", out.getvalue())
        self.image(written=16)
        with contextlib.redirect_stdout(io.StringIO()) as out:
            self.assertEqual(dc.main(args), 0)
        self.assertIn("checked: ok", out.getvalue())


if __name__ == "__main__":
    unittest.main()
