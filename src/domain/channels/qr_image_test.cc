// siyu's QR images read back by decoders siyu does not use to write them: libpng decodes the PNG
// and zbar reads the QR code in it, so a test passes only if a phone's scanner would read the
// content back.
#include "domain/channels/qr_image.h"

#include <gtest/gtest.h>
#include <png.h>
#include <qrencode.h>
#include <zbar.h>

#include <cstring>
#include <regex>

namespace siyu::domain {
namespace {

struct Gray {
  uint32_t width = 0, height = 0;
  std::vector<uint8_t> pixels;  // 0 black … 255 white
  uint8_t At(uint32_t x, uint32_t y) const { return pixels[static_cast<size_t>(y) * width + x]; }
};

Gray DecodePng(const std::string& png) {
  png_image img;
  std::memset(&img, 0, sizeof img);
  img.version = PNG_IMAGE_VERSION;
  EXPECT_NE(png_image_begin_read_from_memory(&img, png.data(), png.size()), 0) << img.message;
  img.format = PNG_FORMAT_GRAY;
  Gray g;
  g.width = img.width;
  g.height = img.height;
  g.pixels.resize(PNG_IMAGE_SIZE(img));
  EXPECT_NE(png_image_finish_read(&img, nullptr, g.pixels.data(), 0, nullptr), 0) << img.message;
  return g;
}

// Every QR code zbar finds in the image, as text.
std::vector<std::string> Scan(const Gray& g) {
  using namespace zbar;  // zbar.h declares its C API in namespace zbar when compiled as C++
  zbar_image_scanner_t* scanner = zbar_image_scanner_create();
  zbar_image_scanner_set_config(scanner, ZBAR_NONE, ZBAR_CFG_ENABLE, 0);
  zbar_image_scanner_set_config(scanner, ZBAR_QRCODE, ZBAR_CFG_ENABLE, 1);
  zbar_image_t* image = zbar_image_create();
  zbar_image_set_format(image, zbar_fourcc('Y', '8', '0', '0'));
  zbar_image_set_size(image, g.width, g.height);
  zbar_image_set_data(image, g.pixels.data(), g.pixels.size(), nullptr);
  zbar_scan_image(scanner, image);
  std::vector<std::string> out;
  for (const zbar_symbol_t* s = zbar_image_first_symbol(image); s; s = zbar_symbol_next(s)) {
    out.emplace_back(zbar_symbol_get_data(s), zbar_symbol_get_data_length(s));
  }
  zbar_image_destroy(image);
  zbar_image_scanner_destroy(scanner);
  return out;
}

TEST(ChannelCodesQr, PngScansBackToTheContent) {
  for (std::string content : {
           std::string("https://m.example.com/landing?state=c4Fq9ZkT2mLp7"),
           std::string("http://weixin.qq.com/q/02kZgfwMTm72WWPkovabbI"),
           std::string("https://m.example.com/s?a=1&state=cAbCdEfGhIjKl#/shop/index?x=1&y=2"),
           std::string("https://m.example.com/") + std::string(300, 'x') + "?state=c1",
       }) {
    auto m = EncodeQr(content);
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    for (int scale : {2, kQrDefaultScale}) {
      Gray g = DecodePng(QrPng(*m, scale));
      EXPECT_EQ(g.width, static_cast<uint32_t>((m->size + 2 * kQrQuietZone) * scale));
      EXPECT_EQ(g.height, g.width);
      EXPECT_EQ(Scan(g), std::vector<std::string>{content}) << "scale " << scale;
    }
  }
}

TEST(ChannelCodesQr, PngIsTheModuleMatrixWithAQuietZone) {
  const std::string content = "https://m.example.com/landing?state=c4Fq9ZkT2mLp7";
  auto m = EncodeQr(content);
  ASSERT_TRUE(m.ok());
  // The matrix is libqrencode's, at level M.
  QRcode* ref =
      QRcode_encodeData(static_cast<int>(content.size()),
                        reinterpret_cast<const unsigned char*>(content.data()), 0, QR_ECLEVEL_M);
  ASSERT_NE(ref, nullptr);
  ASSERT_EQ(m->size, ref->width);
  const int scale = 3;
  Gray g = DecodePng(QrPng(*m, scale));
  const int n = m->size + 2 * kQrQuietZone;
  for (int y = 0; y < n; ++y) {
    for (int x = 0; x < n; ++x) {
      const int mx = x - kQrQuietZone, my = y - kQrQuietZone;
      const bool in = mx >= 0 && my >= 0 && mx < m->size && my < m->size;
      const bool dark = in && (ref->data[my * ref->width + mx] & 1);
      // Every pixel of the module, not just its centre.
      for (int dy = 0; dy < scale; ++dy) {
        for (int dx = 0; dx < scale; ++dx) {
          ASSERT_EQ(g.At(x * scale + dx, y * scale + dy), dark ? 0 : 255)
              << "module " << mx << "," << my;
        }
      }
    }
  }
  QRcode_free(ref);
}

TEST(ChannelCodesQr, SvgDrawsEveryDarkModuleOnce) {
  auto m = EncodeQr("https://m.example.com/landing?state=c4Fq9ZkT2mLp7");
  ASSERT_TRUE(m.ok());
  std::string svg = QrSvg(*m);
  const int n = m->size + 2 * kQrQuietZone;
  EXPECT_NE(svg.find("viewBox=\"0 0 " + std::to_string(n) + " " + std::to_string(n) + "\""),
            std::string::npos);
  EXPECT_NE(svg.find("<svg xmlns=\"http://www.w3.org/2000/svg\""), std::string::npos);
  // Redraw the path's runs onto a grid and compare with the matrix.
  std::vector<uint8_t> drawn(static_cast<size_t>(m->size) * m->size, 0);
  std::regex run(R"(M(\d+) (\d+)h(\d+)v1h-(\d+)z)");
  for (auto it = std::sregex_iterator(svg.begin(), svg.end(), run); it != std::sregex_iterator();
       ++it) {
    int x = std::stoi((*it)[1]) - kQrQuietZone, y = std::stoi((*it)[2]) - kQrQuietZone;
    int len = std::stoi((*it)[3]);
    ASSERT_EQ(len, std::stoi((*it)[4]));
    for (int i = 0; i < len; ++i) {
      ASSERT_LT(x + i, m->size);
      ASSERT_EQ(drawn[static_cast<size_t>(y) * m->size + x + i], 0) << "drawn twice";
      drawn[static_cast<size_t>(y) * m->size + x + i] = 1;
    }
  }
  EXPECT_EQ(drawn, m->dark);
}

TEST(ChannelCodesQr, RefusesContentThatDoesNotFit) {
  EXPECT_EQ(EncodeQr("").status().field(), "content");
  auto huge = EncodeQr(std::string(3000, 'x'));
  EXPECT_EQ(huge.status().code(), ErrorCode::kInvalidField);
  EXPECT_EQ(huge.status().field(), "content");
}

TEST(ChannelCodesQr, WechatImagesAreEmbeddedInSvgAtTheirSize) {
  auto m = EncodeQr("x");
  ASSERT_TRUE(m.ok());
  std::string png = QrPng(*m, 10);
  std::string svg = EmbeddedImageSvg(png, "image/png");
  const std::string side = std::to_string((m->size + 2 * kQrQuietZone) * 10);
  EXPECT_NE(svg.find("viewBox=\"0 0 " + side + " " + side + "\""), std::string::npos) << svg;
  EXPECT_NE(svg.find("href=\"data:image/png;base64,iVBORw0KGgo"), std::string::npos);
  // A JPEG's size comes from its frame header (SOF0): 1280 wide, 1556 high.
  std::string jpeg("\xFF\xD8\xFF\xE0\x00\x04\x00\x00\xFF\xC0\x00\x11\x08\x06\x14\x05\x00", 17);
  jpeg += std::string(20, '\0');
  EXPECT_NE(EmbeddedImageSvg(jpeg, "image/jpeg").find("viewBox=\"0 0 1280 1556\""),
            std::string::npos);
}

}  // namespace
}  // namespace siyu::domain
