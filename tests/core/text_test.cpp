#include "core/text.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <random>
#include <string>

#include "core/test_hook.h"

namespace dlsys::core {
namespace {

using namespace std::string_literals;

TEST(TerminalSafeTest, KeepsPrintableTextAndBackslash) {
  EXPECT_EQ(TerminalSafe(""), "");
  EXPECT_EQ(TerminalSafe("mlp 1.2.0: model.pt ok"), "mlp 1.2.0: model.pt ok");
  EXPECT_EQ(TerminalSafe("C:\\path\\x1b"), "C:\\path\\x1b");
  EXPECT_EQ(TerminalSafe("~"), "~");
}

TEST(TerminalSafeTest, KeepsNonAsciiText) {
  EXPECT_EQ(TerminalSafe("größe ≤ 4 GiB, 模型, 🙂, …"),
            "größe ≤ 4 GiB, 模型, 🙂, …");
  EXPECT_EQ(TerminalSafe("\u00a0\u00a9\u2028\U0010FFFF"), "\u00a0\u00a9\u2028\U0010FFFF");
}

TEST(TerminalSafeTest, EscapesC0ControlsAndDel) {
  EXPECT_EQ(TerminalSafe("a\nb\rc\td"), "a\\nb\\rc\\td");
  EXPECT_EQ(TerminalSafe("\x1b[2K\x1b[1APASS"), "\\x1b[2K\\x1b[1APASS");
  EXPECT_EQ(TerminalSafe("\x07\x08\x7f"), "\\x07\\x08\\x7f");
  EXPECT_EQ(TerminalSafe("a\0b"s), "a\\x00b");
  EXPECT_EQ(TerminalSafe("\x1f"), "\\x1f");
}

TEST(TerminalSafeTest, EscapesC1Controls) {
  // U+0080..U+009F are valid UTF-8 (C2 80..C2 9F); U+009B is the 8-bit CSI.
  EXPECT_EQ(TerminalSafe("\u0080"), "\\u{80}");
  EXPECT_EQ(TerminalSafe("x\u009b2Ky"), "x\\u{9b}2Ky");
  EXPECT_EQ(TerminalSafe("\u009f\u00a0"), "\\u{9f}\u00a0");
}

TEST(TerminalSafeTest, EscapesBidiControls) {
  EXPECT_EQ(TerminalSafe("a\u202eb"), "a\\u{202e}b");
  for (char32_t cp : {0x200E, 0x200F, 0x202A, 0x202B, 0x202C, 0x202D, 0x202E, 0x2066, 0x2067,
                      0x2068, 0x2069, 0x061C}) {
    std::string utf8;
    if (cp < 0x800) {
      utf8 = {static_cast<char>(0xC0 | (cp >> 6)), static_cast<char>(0x80 | (cp & 0x3F))};
    } else {
      utf8 = {static_cast<char>(0xE0 | (cp >> 12)), static_cast<char>(0x80 | ((cp >> 6) & 0x3F)),
              static_cast<char>(0x80 | (cp & 0x3F))};
    }
    char want[16];
    std::snprintf(want, sizeof want, "\\u{%x}", static_cast<unsigned>(cp));
    EXPECT_EQ(TerminalSafe(utf8), want) << want;
  }
  // Neighbours of the bidi ranges are ordinary characters.
  EXPECT_EQ(TerminalSafe("\u2029\u202f\u2065\u206a"), "\u2029\u202f\u2065\u206a");
}

TEST(TerminalSafeTest, EscapesEveryByteOfMalformedUtf8) {
  EXPECT_EQ(TerminalSafe("\xff"), "\\xff");
  EXPECT_EQ(TerminalSafe("a\xfe\xff"
                         "b"),
            "a\\xfe\\xffb");
  EXPECT_EQ(TerminalSafe("\x80"), "\\x80");                             // stray continuation byte
  EXPECT_EQ(TerminalSafe("\xc0\xaf"), "\\xc0\\xaf");                    // overlong '/'
  EXPECT_EQ(TerminalSafe("\xe0\x80\xaf"), "\\xe0\\x80\\xaf");           // overlong '/'
  EXPECT_EQ(TerminalSafe("\xed\xa0\x80"), "\\xed\\xa0\\x80");           // surrogate U+D800
  EXPECT_EQ(TerminalSafe("\xf4\x90\x80\x80"), "\\xf4\\x90\\x80\\x80");  // above U+10FFFF
  EXPECT_EQ(TerminalSafe("\xf8\x88\x80\x80\x80"), "\\xf8\\x88\\x80\\x80\\x80");
  EXPECT_EQ(TerminalSafe("\xe2\x82"), "\\xe2\\x82");    // truncated at the end
  EXPECT_EQ(TerminalSafe("\xe2\x82x"), "\\xe2\\x82x");  // truncated in the middle
  // An escape sequence hidden behind a broken lead byte is still escaped.
  EXPECT_EQ(TerminalSafe("\xc3\x1b[2K"), "\\xc3\\x1b[2K");
}

bool HasControlOrBidi(const std::string& s) {
  for (std::size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c == 0x7f) return true;
    if (c == 0xC2 && i + 1 < s.size() && static_cast<unsigned char>(s[i + 1]) <= 0x9F) return true;
    if (c == 0xD8 && i + 1 < s.size() && static_cast<unsigned char>(s[i + 1]) == 0x9C) return true;
    if (c == 0xE2 && i + 2 < s.size()) {
      const auto b1 = static_cast<unsigned char>(s[i + 1]);
      const auto b2 = static_cast<unsigned char>(s[i + 2]);
      if (b1 == 0x80 && (b2 == 0x8E || b2 == 0x8F || (b2 >= 0xAA && b2 <= 0xAE))) return true;
      if (b1 == 0x81 && b2 >= 0xA6 && b2 <= 0xA9) return true;
    }
  }
  return false;
}

TEST(TerminalSafeTest, RandomBytesComeOutSafeAndStable) {
  std::mt19937 rng(42);
  for (int round = 0; round < 2000; ++round) {
    std::string s(rng() % 64, '\0');
    for (auto& c : s) {
      // Bias towards the interesting bytes: controls, lead and continuation bytes.
      const unsigned pick = rng() % 4;
      c = static_cast<char>(pick == 0   ? rng() % 0x20
                            : pick == 1 ? 0x80 + rng() % 0x40
                            : pick == 2 ? 0xC0 + rng() % 0x40
                                        : rng() % 0x100);
    }
    const std::string safe = TerminalSafe(s);
    EXPECT_FALSE(HasControlOrBidi(safe)) << safe;
    EXPECT_EQ(TerminalSafe(safe), safe) << "not a fixed point: " << safe;
    EXPECT_LE(safe.size(), 8 * s.size());
  }
}

TEST(TruncateTest, KeepsShortTextAndCutsLongTextWithEllipsis) {
  EXPECT_EQ(Truncate("", 5), "");
  EXPECT_EQ(Truncate("abcde", 5), "abcde");
  EXPECT_EQ(Truncate("abcdef", 5), "abcd…");
  EXPECT_EQ(Truncate("abcdef", 1), "…");
  EXPECT_EQ(Truncate("abcdef", 0), "");
  EXPECT_EQ(CharCount(Truncate(std::string(1000, 'x'), 120)), 120u);
}

TEST(TruncateTest, NeverSplitsACharacter) {
  EXPECT_EQ(Truncate("ééééé", 5), "ééééé");
  EXPECT_EQ(Truncate("éééééé", 5), "éééé…");
  EXPECT_EQ(Truncate("🙂🙂🙂", 2), "🙂…");
  // Malformed bytes count one character each.
  EXPECT_EQ(Truncate("\xff\xff\xff", 2), "\xff…");
  EXPECT_EQ(CharCount("a\xffé🙂"), 4u);
  EXPECT_EQ(CharCount(""), 0u);
}

TEST(TruncateMiddleTest, KeepsBothEnds) {
  EXPECT_EQ(TruncateMiddle("abcdefghij", 10), "abcdefghij");
  EXPECT_EQ(TruncateMiddle("abcdefghijk", 10), "abc…fghijk");
  EXPECT_EQ(TruncateMiddle("a.b.c.d.leaf", 7), "a.…leaf");
  EXPECT_EQ(TruncateMiddle("ééééééé", 4), "é…éé");
  EXPECT_EQ(TruncateMiddle("abc", 1), "…");
  EXPECT_EQ(TruncateMiddle("abc", 0), "");
  const std::string long_key = std::string(500, 'k') + ".leaf0042";
  const std::string cut = TruncateMiddle(long_key, 120);
  EXPECT_EQ(CharCount(cut), 120u);
  EXPECT_TRUE(cut.ends_with(".leaf0042")) << cut;
  EXPECT_TRUE(cut.starts_with("kkk")) << cut;
}

// TestHook stops the process at its point: run it in a child and watch from here.
TEST(TestHookTest, StopsAtItsPointAfterOneLineOnStderr) {
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    dup2(fds[1], STDERR_FILENO);
    setenv("DLSYS_TEST_HOOK", "unit-point", 1);
    TestHook("other-point");  // no-op
    TestHook("unit-point");   // stops here until SIGCONT
    _exit(7);
  }
  close(fds[1]);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, WUNTRACED), pid);
  ASSERT_TRUE(WIFSTOPPED(status));
  EXPECT_EQ(WSTOPSIG(status), SIGSTOP);
  char buf[128];
  const ssize_t n = read(fds[0], buf, sizeof buf);
  close(fds[0]);
  ASSERT_GT(n, 0);
  EXPECT_EQ(std::string(buf, static_cast<std::size_t>(n)), "dlsys-test-hook: unit-point\n");
  kill(pid, SIGCONT);
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 7);
}

TEST(TestHookTest, IsANoOpWithoutTheVariable) {
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    unsetenv("DLSYS_TEST_HOOK");
    TestHook("unit-point");
    _exit(7);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, WUNTRACED), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 7);
}

}  // namespace
}  // namespace dlsys::core
