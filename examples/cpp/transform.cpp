// transform: reads a file from a granted directory, converts its text as
// $MODE says, writes the result, reports on stdout and stderr and exits with
// the code given as third argument. Same behaviour as the Rust, C, Go and
// AssemblyScript examples. Built with -fno-exceptions: errors are reported
// through stream state, not exceptions.
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>
#include <string_view>
#include <vector>

namespace {

[[noreturn]] void fail(int code, const std::string &message) {
    std::cerr << "transform: " << message << '\n';
    std::exit(code);
}

bool is_space(unsigned char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

struct Counts {
    std::size_t lines = 0, words = 0;
};

Counts convert(std::string &text, bool upper) {
    Counts counts;
    bool in_word = false;
    for (char &ch : text) {
        auto c = static_cast<unsigned char>(ch);
        if (c == '\n') ++counts.lines;
        bool space = is_space(c);
        if (!space && !in_word) ++counts.words;
        in_word = !space;
        if (upper && c >= 'a' && c <= 'z') ch = static_cast<char>(c - ('a' - 'A'));
        else if (!upper && c >= 'A' && c <= 'Z') ch = static_cast<char>(c + ('a' - 'A'));
    }
    return counts;
}

}  // namespace

int main(int argc, char **argv) {
    std::vector<std::string_view> args(argv, argv + argc);
    if (args.size() < 3 || args.size() > 4) fail(2, "usage: transform INPUT OUTPUT [EXIT_CODE]");
    std::string input(args[1]), output(args[2]);
    int exit_code = 0;
    if (args.size() == 4) {
        char *end = nullptr;
        errno = 0;
        long n = std::strtol(argv[3], &end, 10);
        if (errno || *argv[3] == '\0' || *end != '\0' || n < 0 || n > 125)
            fail(2, "exit code must be an integer from 0 to 125, got \"" + std::string(args[3]) + "\"");
        exit_code = static_cast<int>(n);
    }
    const char *env = std::getenv("MODE");
    std::string mode = env && *env ? env : "upper";
    if (mode != "upper" && mode != "lower") fail(2, "unknown MODE \"" + mode + "\" (expected upper or lower)");

    std::ifstream in(input, std::ios::binary);
    if (!in) fail(1, "cannot read " + input + ": " + std::strerror(errno));
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (in.bad()) fail(1, "cannot read " + input + ": " + std::strerror(errno));

    Counts counts = convert(text, mode == "upper");

    std::ofstream out(output, std::ios::binary | std::ios::trunc);
    if (!out) fail(1, "cannot write " + output + ": " + std::strerror(errno));
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    out.close();
    if (!out) fail(1, "cannot write " + output + ": " + std::strerror(errno));

    std::cout << "transform (c++)\n"
              << "mode: " << mode << '\n'
              << "input: " << input << ": " << text.size() << " bytes, " << counts.lines << " lines, "
              << counts.words << " words\n"
              << std::flush;
    std::cerr << "wrote " << text.size() << " bytes to " << output << '\n';
    return exit_code;
}
