"""The rule scripts/deploy --tune applies to Power Tuning's measurements."""

import unittest

from power_tuning import choose, table


def stat(mb, ms, price):
    return {"value": mb, "averageDuration": ms, "averagePrice": price}


class ChooseTest(unittest.TestCase):
    def test_the_cheapest_size_within_a_quarter_of_a_whole_vcpu(self):
        stats = [
            stat(128, 143.0, 0.44e-6),
            stat(256, 106.0, 0.55e-6),
            stat(512, 87.0, 0.79e-6),
            stat(1024, 78.0, 1.24e-6),
            stat(1769, 74.0, 1.90e-6),
            stat(2048, 74.0, 2.17e-6),
        ]
        # 74 ms * 1.25 = 92.5 ms: 512 MB is the cheapest within it.
        self.assertEqual(choose(stats)["value"], 512)

    def test_ten_milliseconds_is_allowed_for_a_quick_function(self):
        stats = [stat(128, 12.0, 0.21e-6), stat(256, 6.0, 0.22e-6), stat(1769, 2.5, 0.3e-6)]
        self.assertEqual(choose(stats)["value"], 128)

    def test_without_1769_the_largest_size_is_the_baseline(self):
        stats = [stat(128, 3000.0, 5.0e-6), stat(1024, 540.0, 7.4e-6), stat(2048, 390.0, 10.6e-6)]
        self.assertEqual(choose(stats)["value"], 2048)

    def test_a_cheaper_faster_size_wins(self):
        # Real sweeps of CPU-bound functions do this: twice the memory,
        # less than half the time.
        stats = [stat(128, 1000.0, 2.2e-6), stat(256, 400.0, 1.8e-6), stat(1769, 100.0, 3.0e-6)]
        self.assertEqual(choose(stats)["value"], 1769)
        stats.append(stat(512, 110.0, 1.0e-6))
        self.assertEqual(choose(stats)["value"], 512)

    def test_no_measurements_is_an_error(self):
        with self.assertRaises(ValueError):
            choose([])

    def test_the_table_marks_the_choice_and_the_template(self):
        stats = [stat(256, 78.0, 0.46e-6), stat(512, 64.0, 0.63e-6), stat(1769, 54.0, 1.47e-6)]
        text = table(stats, choose(stats), 256)
        self.assertIn("| 512 MB | 64.0 ms | $0.0000006300 | chosen |", text)
        self.assertIn("| 256 MB | 78.0 ms | $0.0000004600 | the template's |", text)


if __name__ == "__main__":
    unittest.main()
