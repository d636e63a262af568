"""Item sizes by DynamoDB's rules ("Item sizes and formats" in the
DynamoDB developer guide), which the cost benchmark's units rest on."""

import unittest

from meter import item_size, number_size, value_size


class ItemSizes(unittest.TestCase):
    def test_strings_count_their_utf8_bytes_and_names_count_too(self):
        self.assertEqual(item_size({"shirtColor": {"S": "R"}}), 11)
        self.assertEqual(item_size({"name": {"S": "café"}}), 4 + 5)

    def test_numbers_are_a_byte_per_two_significant_digits_plus_one(self):
        self.assertEqual(number_size("101"), 3)
        self.assertEqual(number_size("1000000"), 2)  # zeroes trimmed
        self.assertEqual(number_size("-12.5"), 3)
        self.assertEqual(number_size("0"), 2)
        self.assertEqual(value_size({"N": "12345678901234567890"}), 11)

    def test_lists_and_maps_add_three_bytes_and_one_per_element(self):
        self.assertEqual(value_size({"L": []}), 3)
        self.assertEqual(value_size({"M": {}}), 3)
        self.assertEqual(value_size({"L": [{"S": "ab"}, {"BOOL": True}]}), 3 + (2 + 1) + (1 + 1))
        self.assertEqual(value_size({"M": {"a": {"S": "xy"}}}), 3 + (1 + 2 + 1))

    def test_binary_is_its_decoded_length_and_sets_their_members(self):
        self.assertEqual(value_size({"B": "AAECAw=="}), 4)
        self.assertEqual(value_size({"SS": ["a", "bc"]}), 3)
        self.assertEqual(value_size({"NULL": True}), 1)

    def test_an_absent_item_is_empty(self):
        self.assertEqual(item_size(None), 0)


if __name__ == "__main__":
    unittest.main()
