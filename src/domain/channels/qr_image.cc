#include "domain/channels/qr_image.h"

#include <qrencode.h>
#include <zlib.h>

#include <memory>

#include "domain/wechat/encoding.h"

namespace siyu::domain {

namespace {

void PutU32(std::string& out, uint32_t v) {
  out.push_back(static_cast<char>(v >> 24));
  out.push_back(static_cast<char>(v >> 16));
  out.push_back(static_cast<char>(v >> 8));
  out.push_back(static_cast<char>(v));
}

void PngChunk(std::string& out, const char* type, const std::string& data) {
  PutU32(out, static_cast<uint32_t>(data.size()));
  std::string body = std::string(type, 4) + data;
  out += body;
  PutU32(out,
         static_cast<uint32_t>(crc32(0, reinterpret_cast<const Bytef*>(body.data()), body.size())));
}

uint32_t GetU16(std::string_view b, size_t i) {
  return (static_cast<uint32_t>(static_cast<unsigned char>(b[i])) << 8) |
         static_cast<unsigned char>(b[i + 1]);
}

uint32_t GetU32(std::string_view b, size_t i) { return (GetU16(b, i) << 16) | GetU16(b, i + 2); }

// Width and height of a PNG or JPEG; 0×0 when the header cannot be read.
std::pair<uint32_t, uint32_t> ImageSize(std::string_view b, std::string_view mime) {
  if (mime == "image/png" && b.size() >= 24) return {GetU32(b, 16), GetU32(b, 20)};
  if (mime == "image/jpeg") {
    // Walk the markers to the frame header (SOF0–SOF15 but DHT, JPG and DAC).
    size_t i = 2;
    while (i + 9 < b.size() && static_cast<unsigned char>(b[i]) == 0xFF) {
      auto marker = static_cast<unsigned char>(b[i + 1]);
      if (marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC) {
        return {GetU16(b, i + 7), GetU16(b, i + 5)};
      }
      i += 2 + GetU16(b, i + 2);
    }
  }
  return {0, 0};
}

}  // namespace

StatusOr<QrMatrix> EncodeQr(std::string_view text) {
  if (text.empty()) return InvalidField("content", "a QR code needs some content");
  std::unique_ptr<QRcode, decltype(&QRcode_free)> code(
      QRcode_encodeData(static_cast<int>(text.size()),
                        reinterpret_cast<const unsigned char*>(text.data()), 0, QR_ECLEVEL_M),
      &QRcode_free);
  if (!code) {
    return InvalidField("content", "the content (" + std::to_string(text.size()) +
                                       " bytes) is too long for a QR code");
  }
  QrMatrix m;
  m.size = code->width;
  m.dark.resize(static_cast<size_t>(m.size) * m.size);
  for (size_t i = 0; i < m.dark.size(); ++i) m.dark[i] = code->data[i] & 1;
  return m;
}

std::string QrSvg(const QrMatrix& m) {
  const int n = m.size + 2 * kQrQuietZone;
  const std::string side = std::to_string(n);
  const std::string px = std::to_string(n * kQrDefaultScale);
  std::string out = R"(<?xml version="1.0" encoding="UTF-8"?>)"
                    "\n"
                    R"(<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 )" +
                    side + " " + side + R"(" width=")" + px + R"(" height=")" + px +
                    R"(" shape-rendering="crispEdges"><rect width=")" + side + R"(" height=")" +
                    side + R"(" fill="#fff"/><path fill="#000" d=")";
  // One rectangle per horizontal run of dark modules keeps the path short.
  for (int y = 0; y < m.size; ++y) {
    for (int x = 0; x < m.size;) {
      if (!m.At(x, y)) {
        ++x;
        continue;
      }
      int run = 1;
      while (x + run < m.size && m.At(x + run, y)) ++run;
      out += "M" + std::to_string(x + kQrQuietZone) + " " + std::to_string(y + kQrQuietZone) + "h" +
             std::to_string(run) + "v1h-" + std::to_string(run) + "z";
      x += run;
    }
  }
  out += "\"/></svg>\n";
  return out;
}

std::string QrPng(const QrMatrix& m, int scale) {
  const uint32_t px = static_cast<uint32_t>((m.size + 2 * kQrQuietZone) * scale);
  const size_t row_bytes = (px + 7) / 8;
  // Rows of 1-bit pixels (1 = white), each after filter byte 0 (none).
  std::string raw;
  raw.reserve((row_bytes + 1) * px);
  for (uint32_t py = 0; py < px; ++py) {
    raw.push_back(0);
    const int y = static_cast<int>(py) / scale - kQrQuietZone;
    for (size_t byte = 0; byte < row_bytes; ++byte) {
      unsigned char bits = 0;
      for (int bit = 0; bit < 8; ++bit) {
        const uint32_t pxx = static_cast<uint32_t>(byte * 8 + bit);
        const int x = static_cast<int>(pxx) / scale - kQrQuietZone;
        const bool dark = pxx < px && x >= 0 && y >= 0 && x < m.size && y < m.size && m.At(x, y);
        if (!dark) bits |= static_cast<unsigned char>(0x80 >> bit);
      }
      raw.push_back(static_cast<char>(bits));
    }
  }
  uLongf zlen = compressBound(raw.size());
  std::string z(zlen, '\0');
  compress2(reinterpret_cast<Bytef*>(z.data()), &zlen, reinterpret_cast<const Bytef*>(raw.data()),
            raw.size(), 9);
  z.resize(zlen);

  std::string ihdr;
  PutU32(ihdr, px);
  PutU32(ihdr, px);
  ihdr += std::string("\x01\x00\x00\x00\x00", 5);  // bit depth 1, greyscale, deflate, no interlace
  std::string out = "\x89PNG\r\n\x1a\n";
  PngChunk(out, "IHDR", ihdr);
  PngChunk(out, "IDAT", z);
  PngChunk(out, "IEND", "");
  return out;
}

std::string EmbeddedImageSvg(std::string_view bytes, std::string_view mime) {
  auto [w, h] = ImageSize(bytes, mime);
  if (w == 0 || h == 0) w = h = 430;  // WeChat's default code width
  const std::string ws = std::to_string(w), hs = std::to_string(h);
  return R"(<?xml version="1.0" encoding="UTF-8"?>)"
         "\n"
         R"(<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 )" +
         ws + " " + hs + R"(" width=")" + ws + R"(" height=")" + hs + R"("><image width=")" + ws +
         R"(" height=")" + hs + R"(" href="data:)" + std::string(mime) + ";base64," +
         wechat::Base64Encode(bytes) + "\"/></svg>\n";
}

}  // namespace siyu::domain
