// An allocation-heavy C++ program: std::string (short and heap-allocated),
// std::map, std::unordered_map, std::vector growth, std::shared_ptr handed
// between threads, and std::thread created in waves. Every result is derived
// from a fixed generator, so the printed digest is the same under any malloc;
// a heap that corrupts or loses data changes it.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <condition_variable>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace {

std::uint64_t mix(std::uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    return x ^ (x >> 33);
}

// Words from 1 to 60 characters: below and above the small-string buffer.
std::string make_word(std::uint64_t n) {
    std::uint64_t h = mix(n);
    std::size_t len = 1 + h % (h % 4 == 0 ? 60 : 12);
    std::string word;
    for (std::size_t i = 0; i < len; i++) word.push_back(static_cast<char>('a' + (mix(h + i) % 26)));
    return word;
}

std::uint64_t digest_of(const std::string &s, std::uint64_t seed) {
    std::uint64_t h = seed;
    for (unsigned char c : s) h = mix(h ^ c);
    return h;
}

// Each worker counts the words of its own generated text in a std::map and an
// std::unordered_map, builds vectors of strings and sorts them.
struct WordStats {
    std::map<std::string, std::uint64_t> counts;
    std::uint64_t digest = 0;
};

WordStats count_words(std::uint64_t seed, std::size_t words) {
    WordStats stats;
    std::unordered_map<std::string, std::vector<std::uint32_t>> positions;
    std::vector<std::string> text;
    for (std::size_t i = 0; i < words; i++) {
        std::string w = make_word(seed * 1000003 + i % (words / 3 + 1));
        stats.counts[w]++;
        positions[w].push_back(static_cast<std::uint32_t>(i));
        text.push_back(std::move(w));
    }
    std::sort(text.begin(), text.end());
    text.erase(std::unique(text.begin(), text.end()), text.end());
    std::string joined;
    for (const auto &w : text) {
        joined += w;
        joined += ' ';
    }
    std::uint64_t positions_sum = 0;
    for (const auto &[word, where] : positions) positions_sum += where.size() * word.size();
    stats.digest = digest_of(joined, positions_sum);
    return stats;
}

// A queue of shared strings: the producer allocates, the consumer holds the
// last reference and frees them on its own thread.
class SharedQueue {
  public:
    void push(std::shared_ptr<std::string> s) {
        std::lock_guard<std::mutex> lock(mutex_);
        items_.push_back(std::move(s));
        ready_.notify_one();
    }
    void close() {
        std::lock_guard<std::mutex> lock(mutex_);
        closed_ = true;
        ready_.notify_all();
    }
    std::shared_ptr<std::string> pop() {
        std::unique_lock<std::mutex> lock(mutex_);
        ready_.wait(lock, [this] { return !items_.empty() || closed_; });
        if (items_.empty()) return nullptr;
        auto s = std::move(items_.front());
        items_.pop_front();
        return s;
    }

  private:
    std::mutex mutex_;
    std::condition_variable ready_;
    std::deque<std::shared_ptr<std::string>> items_;
    bool closed_ = false;
};

std::uint64_t shared_handoff(std::size_t items) {
    SharedQueue queue;
    std::uint64_t consumed = 0;
    std::thread consumer([&] {
        while (auto s = queue.pop()) consumed = mix(consumed ^ digest_of(*s, s->size()));
    });
    for (std::size_t i = 0; i < items; i++) {
        auto s = std::make_shared<std::string>(make_word(i));
        for (int r = 0; r < static_cast<int>(i % 5); r++) *s += make_word(i * 7 + r);
        queue.push(std::move(s));
    }
    queue.close();
    consumer.join();
    return consumed;
}

}  // namespace

int main() {
    const int waves = 12;
    const int threads_per_wave = 6;
    std::map<std::string, std::uint64_t> merged;
    std::uint64_t digest = 0;
    for (int wave = 0; wave < waves; wave++) {
        std::vector<WordStats> results(threads_per_wave);
        std::vector<std::thread> threads;
        for (int t = 0; t < threads_per_wave; t++)
            threads.emplace_back([&results, wave, t] {
                results[t] = count_words(static_cast<std::uint64_t>(wave * threads_per_wave + t), 20000);
            });
        for (auto &t : threads) t.join();
        // The maps were built on the worker threads and are merged, then
        // destroyed, on this one.
        for (auto &r : results) {
            for (const auto &[word, n] : r.counts) merged[word] += n;
            digest = mix(digest ^ r.digest);
        }
    }
    std::uint64_t handoff = shared_handoff(200000);
    std::uint64_t merged_digest = 0;
    std::uint64_t total = 0;
    for (const auto &[word, n] : merged) {
        merged_digest = mix(merged_digest ^ digest_of(word, n));
        total += n;
    }
    std::printf("distinct words %zu, total words %llu\n", merged.size(), static_cast<unsigned long long>(total));
    std::printf("digest %016llx %016llx %016llx\n", static_cast<unsigned long long>(digest),
                static_cast<unsigned long long>(merged_digest), static_cast<unsigned long long>(handoff));
    return 0;
}
