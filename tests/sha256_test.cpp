// tests/sha256_test.cpp — core/sha256: the FIPS 180-2 test vectors, the padding boundaries,
// incremental updates against one-shot hashing, and Digest's hex form, order and hash.
//
// The vectors are those of FIPS 180-2 appendix B (one block, two blocks, one million 'a')
// plus the 896-bit message of the NIST examples; the padding-boundary digests were computed
// with Python's hashlib.
#include <algorithm>
#include <cctype>
#include <random>
#include <string>
#include <unordered_set>

#include <gtest/gtest.h>

#include "core/sha256.h"

namespace trainrt::detail {
namespace {

TEST(Sha256, Fips180Vectors) {
  EXPECT_EQ(sha256("").hex(), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256("abc").hex(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq").hex(),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(sha256("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmn"
                   "opqrstnopqrstu")
                .hex(),
            "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
}

TEST(Sha256, OneMillionA) {
  const std::string a(1000000, 'a');
  EXPECT_EQ(sha256(a).hex(), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  // The same million bytes fed in 1000 pieces of 1000.
  Sha256 h;
  for (int i = 0; i < 1000; ++i) h.update(std::string_view(a).substr(0, 1000));
  EXPECT_EQ(h.finish().hex(), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256, PaddingBoundaries) {
  // 55 bytes: the length still fits the last block; 56: it needs an extra block; 64: the
  // message fills a block exactly.
  const std::pair<std::size_t, const char*> cases[] = {
      {55, "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318"},
      {56, "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a"},
      {63, "7d3e74a05d7db15bce4ad9ec0658ea98e3f06eeecf16b4c6fff2da457ddc2f34"},
      {64, "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb"},
      {65, "635361c48bb9eab14198e76ea8ab7f1a41685d6ad62aa9146d301d4f17eb0ae0"},
      {119, "31eba51c313a5c08226adf18d4a359cfdfd8d2e816b13f4af952f7ea6584dcfb"},
      {120, "2f3d335432c70b580af0e8e1b3674a7c020d683aa5f73aaaedfdc55af904c21c"},
      {128, "6836cf13bac400e9105071cd6af47084dfacad4e5e302c94bfed24e013afb73e"},
  };
  for (const auto& [n, hex] : cases) EXPECT_EQ(sha256(std::string(n, 'a')).hex(), hex) << n << " bytes";
}

TEST(Sha256, PiecewiseUpdatesEqualOneUpdate) {
  std::mt19937 rng(7);
  for (std::size_t size : {0u, 1u, 63u, 64u, 65u, 127u, 128u, 129u, 300u, 1000u}) {
    std::string data(size, '\0');
    for (char& c : data) c = static_cast<char>(rng());
    const Digest whole = sha256(data);
    // Every split into two pieces.
    for (std::size_t cut = 0; cut <= size; cut += std::max<std::size_t>(1, size / 40)) {
      Sha256 h;
      h.update(std::string_view(data).substr(0, cut));
      h.update(data.data() + cut, size - cut);
      EXPECT_EQ(h.finish(), whole) << "size " << size << " cut at " << cut;
    }
    // Random piece sizes, empty pieces included; and byte by byte.
    Sha256 random_pieces, bytes;
    for (std::size_t at = 0; at < size;) {
      const std::size_t n = std::min<std::size_t>(size - at, rng() % 80);
      random_pieces.update(data.data() + at, n);
      at += n;
    }
    for (char c : data) bytes.update(&c, 1);
    EXPECT_EQ(random_pieces.finish(), whole) << size;
    EXPECT_EQ(bytes.finish(), whole) << size;
  }
}

TEST(Sha256, FinishResetsForTheNextMessage) {
  Sha256 h;
  h.update("some earlier message");
  (void)h.finish();
  h.update("abc");
  EXPECT_EQ(h.finish(), sha256("abc"));
  EXPECT_EQ(h.finish(), sha256(""));
}

TEST(Digest, HexRoundTripAndRejects) {
  const Digest d = sha256("abc");
  EXPECT_EQ(Digest::from_hex(d.hex()), d);
  std::string upper = d.hex();
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  EXPECT_EQ(Digest::from_hex(upper), d);
  EXPECT_FALSE(Digest::from_hex(""));
  EXPECT_FALSE(Digest::from_hex(d.hex().substr(1)));        // 63 digits
  EXPECT_FALSE(Digest::from_hex(d.hex() + "0"));            // 65 digits
  EXPECT_FALSE(Digest::from_hex("g" + d.hex().substr(1)));  // not a hex digit
  EXPECT_FALSE(Digest::from_hex(" " + d.hex().substr(1)));
  EXPECT_EQ(Digest{}.hex(), std::string(64, '0'));
}

TEST(Digest, OrderAndHash) {
  Digest a, b;
  b.bytes[0] = 1;
  Digest c = b;
  c.bytes[31] = 1;
  EXPECT_LT(a, b);
  EXPECT_LT(b, c);
  EXPECT_NE(a, b);
  std::unordered_set<Digest, DigestHash> set;
  for (int i = 0; i < 100; ++i) set.insert(sha256(std::to_string(i)));
  set.insert(sha256("0"));
  EXPECT_EQ(set.size(), 100u);
  EXPECT_TRUE(set.contains(sha256("42")));
  EXPECT_FALSE(set.contains(sha256("100")));
}

}  // namespace
}  // namespace trainrt::detail
