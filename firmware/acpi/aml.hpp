#pragma once
// A small builder for AML, the byte code of the DSDT (ACPI 6.5 §20.2 "AML Grammar Definition").
// Each function returns the encoding of one term; terms nest by passing encodings as arguments, so
//   device("COM1", {name("_HID", eisa_id("PNP0501")), name("_UID", zero())})
// reads like the ASL it stands for. Only what kvmlet's tables need is here.
//
// The inputs are kvmlet's own constants, never guest data: a malformed name, an integer form that
// does not fit or an oversized package is a programming error and throws kvmlet::Error.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace kvmlet::firmware::acpi::aml {

using Bytes = std::vector<std::uint8_t>;

// §20.2.4 PkgLength: the encoding of the length of a package whose body (everything after the
// PkgLength) is `body` bytes long. The encoded value counts the PkgLength's own 1 to 4 bytes.
Bytes pkg_length(std::size_t body);

// §20.2.2 NameString: an optional root ('\') or parent ('^') prefix, then dot-separated name
// segments of 1 to 4 characters (padded with '_': "PCI" is "PCI_"). "\_SB_.PCI0", "_HID", "^FOO".
Bytes name_string(std::string_view path);

// §20.2.3 Data objects. integer() picks the shortest form: Zero, One, Ones (all 64 bits: kvmlet's
// DSDT has revision 2), or the smallest of ByteConst, WordConst, DWordConst and QWordConst.
Bytes zero();
Bytes one();
Bytes ones();
Bytes byte_const(std::uint8_t value);
Bytes word_const(std::uint16_t value);
Bytes dword_const(std::uint32_t value);
Bytes qword_const(std::uint64_t value);
Bytes integer(std::uint64_t value);
Bytes string(std::string_view text);  // ASCII 0x01..0x7f, NUL-terminated in the encoding
Bytes buffer(std::span<std::uint8_t const> bytes);
Bytes package(std::vector<Bytes> const& elements);  // at most 255 elements

// A compressed EISA ID ("PNP0A03": three letters, four hex digits) as a DWordConst (§19.6.35
// EISAID): 0x030ad041 for "PNP0A03". eisa_id_value() is the 32-bit value itself.
std::uint32_t eisa_id_value(std::string_view id);
Bytes eisa_id(std::string_view id);

// §20.2.5 Named objects and statements.
Bytes name(std::string_view path, Bytes const& object);
Bytes scope(std::string_view path, std::vector<Bytes> const& terms);
Bytes device(std::string_view path, std::vector<Bytes> const& terms);
// A method of `args` (0 to 7) arguments, not serialized, sync level 0.
Bytes method(std::string_view path, std::uint8_t args, std::vector<Bytes> const& terms);
Bytes return_value(Bytes const& value);
// §19.6.92 Notify (path, value): the OS's handler of the object at `path` gets `value` (0x80 on a
// PNP0C0C power button: "button pressed", §4.8.3.1.1).
Bytes notify(std::string_view path, std::uint8_t value);

}  // namespace kvmlet::firmware::acpi::aml
