// fmt's compiled part, for the static kvmlet (KVMLET_STATIC): Debian's libfmt-dev has no static
// library, so this translation unit compiles fmt's implementation (fmt/format-inl.h) once, and
// instantiates the two templates that fmt/format.h declares extern and kvmlet's formatting needs.
#include <fmt/format-inl.h>

FMT_BEGIN_NAMESPACE
namespace detail {
template auto thousands_sep_impl<char>(locale_ref) -> thousands_sep_result<char>;
template auto decimal_point_impl<char>(locale_ref) -> char;
}  // namespace detail
FMT_END_NAMESPACE
