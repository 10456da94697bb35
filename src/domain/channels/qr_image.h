// QR images rendered by siyu itself (libqrencode), so that a code whose content siyu knows — a
// link, the URL of an official-account QR code — prints without asking WeChat for an image:
// SVG for screens and print, PNG (written with zlib) for download. Error correction level M
// (15 %), byte mode, a quiet zone of 4 modules as the standard asks. Images that WeChat renders
// itself (mini-program codes, WeCom contact-way QR codes) are wrapped as SVG so that every code
// has both formats. Thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace siyu::domain {

inline constexpr int kQrQuietZone = 4;
inline constexpr int kQrDefaultScale = 8;  // PNG pixels per module
inline constexpr int kQrMaxScale = 32;

struct QrMatrix {
  int size = 0;               // modules per side
  std::vector<uint8_t> dark;  // size × size, row by row; 1 = dark
  bool At(int x, int y) const { return dark[static_cast<size_t>(y) * size + x] != 0; }
};

// INVALID_FIELD (field "content") when `text` is empty or too long for a QR code.
StatusOr<QrMatrix> EncodeQr(std::string_view text);

// An SVG document: a white background and one path of dark modules, 8 px per module.
std::string QrSvg(const QrMatrix& m);
// A 1-bit greyscale PNG, `scale` (1–32) pixels per module.
std::string QrPng(const QrMatrix& m, int scale);
// An image WeChat rendered (PNG or JPEG bytes of `mime`) as an SVG document that embeds it.
std::string EmbeddedImageSvg(std::string_view bytes, std::string_view mime);

}  // namespace siyu::domain
