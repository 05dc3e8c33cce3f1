#include "http_response.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstring>
#include <string_view>

namespace loadgen {

namespace {

constexpr size_t kMaxHead = 64 * 1024;
constexpr size_t kMaxLine = 4096;

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() &&
           std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) { return std::tolower(x) == std::tolower(y); });
}

bool icontains(std::string_view haystack, std::string_view needle) {
    auto it = std::search(haystack.begin(), haystack.end(), needle.begin(), needle.end(),
                          [](char x, char y) { return std::tolower(x) == std::tolower(y); });
    return it != haystack.end();
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
    return s;
}

}  // namespace

void HttpResponseParser::reset() {
    state_ = State::NeedMore;
    head_.clear();
    head_done_ = false;
    status_ = 0;
    keep_alive_ = false;
    body_ = Body::None;
    remaining_ = 0;
    chunk_step_ = ChunkStep::SizeLine;
    line_.clear();
}

HttpResponseParser::State HttpResponseParser::feed(const char* data, size_t n, size_t* used) {
    size_t pos = 0;
    while (state_ == State::NeedMore && pos < n) {
        if (!head_done_) {
            // Scan for the blank line that ends the head, carrying over up to
            // three bytes of a terminator split between reads.
            size_t old = head_.size();
            size_t take = n - pos;
            head_.append(data + pos, take);
            size_t from = old >= 3 ? old - 3 : 0;
            size_t end = head_.find("\r\n\r\n", from);
            if (end == std::string::npos) {
                pos += take;
                if (head_.size() > kMaxHead) state_ = State::Invalid;
                continue;
            }
            size_t head_len = end + 4;
            pos += head_len - old;
            head_.resize(head_len);
            head_done_ = true;
            if (parse_head() != State::NeedMore) break;
            continue;
        }
        switch (body_) {
        case Body::None:
            state_ = State::Complete;
            break;
        case Body::Length: {
            uint64_t take = std::min<uint64_t>(remaining_, n - pos);
            remaining_ -= take;
            pos += take;
            if (remaining_ == 0) state_ = State::Complete;
            break;
        }
        case Body::Chunked:
            pos += feed_chunked(data + pos, n - pos);
            break;
        case Body::UntilClose:
            pos = n;
            break;
        }
    }
    // A head whose body is empty is complete without further bytes.
    if (state_ == State::NeedMore && head_done_ &&
        (body_ == Body::None || (body_ == Body::Length && remaining_ == 0)))
        state_ = State::Complete;
    *used = pos;
    return state_;
}

HttpResponseParser::State HttpResponseParser::finish_at_eof() {
    if (state_ == State::NeedMore) state_ = head_done_ && body_ == Body::UntilClose ? State::Complete : State::Invalid;
    return state_;
}

HttpResponseParser::State HttpResponseParser::parse_head() {
    std::string_view head(head_);
    size_t line_end = head.find("\r\n");
    std::string_view status_line = head.substr(0, line_end);
    // "HTTP/1.1 200 OK"
    if (status_line.size() < 12 || status_line.substr(0, 5) != "HTTP/" || status_line[8] != ' ') {
        return state_ = State::Invalid;
    }
    bool http10 = status_line.substr(5, 3) == "1.0";
    auto code_text = status_line.substr(9, 3);
    auto [p, ec] = std::from_chars(code_text.data(), code_text.data() + 3, status_);
    if (ec != std::errc() || p != code_text.data() + 3) return state_ = State::Invalid;

    keep_alive_ = !http10;
    bool have_length = false, chunked = false;
    uint64_t length = 0;
    size_t pos = line_end + 2;
    while (pos < head.size()) {
        size_t end = head.find("\r\n", pos);
        if (end == std::string_view::npos || end == pos) break;
        std::string_view line = head.substr(pos, end - pos);
        pos = end + 2;
        size_t colon = line.find(':');
        if (colon == std::string_view::npos) continue;
        auto name = trim(line.substr(0, colon));
        auto value = trim(line.substr(colon + 1));
        if (iequals(name, "content-length")) {
            auto [q, e] = std::from_chars(value.data(), value.data() + value.size(), length);
            if (e != std::errc() || q != value.data() + value.size()) return state_ = State::Invalid;
            have_length = true;
        } else if (iequals(name, "transfer-encoding")) {
            chunked = icontains(value, "chunked");
        } else if (iequals(name, "connection")) {
            if (icontains(value, "close")) keep_alive_ = false;
            else if (icontains(value, "keep-alive")) keep_alive_ = true;
        }
    }

    if (status_ >= 100 && status_ < 200 && status_ != 101) {
        // Interim response (100 Continue): the real one follows.
        head_.clear();
        head_done_ = false;
        return state_;
    }
    if (status_ == 204 || status_ == 304 || status_ == 101) {
        body_ = Body::None;
    } else if (chunked) {
        body_ = Body::Chunked;
    } else if (have_length) {
        body_ = Body::Length;
        remaining_ = length;
    } else {
        body_ = Body::UntilClose;
        keep_alive_ = false;
    }
    return state_;
}

size_t HttpResponseParser::feed_chunked(const char* data, size_t n) {
    size_t pos = 0;
    while (pos < n && state_ == State::NeedMore) {
        switch (chunk_step_) {
        case ChunkStep::SizeLine:
        case ChunkStep::Trailer:
        case ChunkStep::DataEnd: {
            const char* nl = static_cast<const char*>(memchr(data + pos, '\n', n - pos));
            size_t take = nl ? size_t(nl - (data + pos)) + 1 : n - pos;
            line_.append(data + pos, take);
            pos += take;
            if (line_.size() > kMaxLine) return state_ = State::Invalid, pos;
            if (!nl) break;
            std::string_view line = trim(std::string_view(line_).substr(0, line_.size() - 1));
            if (chunk_step_ == ChunkStep::SizeLine) {
                line = line.substr(0, line.find(';'));
                uint64_t size = 0;
                auto [q, e] = std::from_chars(line.data(), line.data() + line.size(), size, 16);
                if (e != std::errc() || line.empty()) return state_ = State::Invalid, pos;
                remaining_ = size;
                chunk_step_ = size == 0 ? ChunkStep::Trailer : ChunkStep::Data;
            } else if (chunk_step_ == ChunkStep::DataEnd) {
                chunk_step_ = ChunkStep::SizeLine;
            } else if (line.empty()) {
                state_ = State::Complete;
            }
            line_.clear();
            break;
        }
        case ChunkStep::Data: {
            uint64_t take = std::min<uint64_t>(remaining_, n - pos);
            remaining_ -= take;
            pos += take;
            if (remaining_ == 0) chunk_step_ = ChunkStep::DataEnd;
            break;
        }
        }
    }
    return pos;
}

}  // namespace loadgen
