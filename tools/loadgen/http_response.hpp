// Incremental HTTP/1.x response parser: enough to know the status, where the
// response ends (Content-Length, chunked, or close) and whether the server
// keeps the connection. Bodies are counted, never stored.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace loadgen {

class HttpResponseParser {
public:
    enum class State { NeedMore, Complete, Invalid };

    void reset();

    // Consumes up to `n` bytes; `*used` says how many belonged to this
    // response (bytes past a complete response are the caller's problem).
    State feed(const char* data, size_t n, size_t* used);

    // The peer closed: completes a response whose body runs until close.
    State finish_at_eof();

    State state() const { return state_; }
    int status() const { return status_; }
    bool keep_alive() const { return keep_alive_; }

private:
    enum class Body { None, Length, Chunked, UntilClose };
    enum class ChunkStep { SizeLine, Data, DataEnd, Trailer };

    State parse_head();
    size_t feed_chunked(const char* data, size_t n);

    State state_ = State::NeedMore;
    std::string head_;
    bool head_done_ = false;
    int status_ = 0;
    bool keep_alive_ = false;
    Body body_ = Body::None;
    uint64_t remaining_ = 0;
    ChunkStep chunk_step_ = ChunkStep::SizeLine;
    std::string line_;
};

}  // namespace loadgen
