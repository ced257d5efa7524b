// The HTTP/1.1 transport (internal/http.h) on Boost.Beast: one template session for plain TCP
// and for TLS, an accept loop, limits and graceful stop.
#include "serve/internal/http.h"

#include <atomic>
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <algorithm>
#include <condition_variable>
#include <list>
#include <mutex>
#include <optional>
#include <thread>

#include "core/parallel.h"
#include "serve/protocol.h"

namespace dlsys::serve::internal {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;

}  // namespace

// What the deadline sweep sees of a session (Session is a template: plain TCP or TLS).
// Timeouts are deadlines stored per session and checked by one periodic sweep: arming one
// is an atomic store, where a timer per read and write (beast::tcp_stream's expires_after)
// cost a timer operation and its handler on every request.
class SessionBase {
 public:
  virtual ~SessionBase() = default;
  // Closes the connection on its own executor if its deadline has passed.
  virtual void ExpireIfLate() = 0;
  bool Late(std::int64_t now_ns) const {
    const std::int64_t d = deadline_ns_.load(std::memory_order_relaxed);
    return d != 0 && now_ns >= d;
  }

 protected:
  static std::int64_t NowNs() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
  void Arm(std::chrono::milliseconds timeout) {
    deadline_ns_.store(NowNs() + std::chrono::nanoseconds(timeout).count(),
                       std::memory_order_relaxed);
  }
  void Disarm() { deadline_ns_.store(0, std::memory_order_relaxed); }

 private:
  std::atomic<std::int64_t> deadline_ns_{0};  // steady clock; 0 = none
};

struct HttpServer::Impl {
  HttpOptions options;
  HttpHandler handler;
  HttpDoneFn done;
  // Counters outlive the io_context (declared before it): sessions destroyed with it update them.
  std::atomic<int> connections{0};
  std::atomic<int> inflight{0};
  std::atomic<int> writing{0};  // responses handed to the socket, not yet through `done`
  std::atomic<bool> closing{false};
  std::mutex route_mu;
  std::shared_ptr<const std::vector<std::string>> route_headers;  // under route_mu
  std::mutex mu;
  std::condition_variable idle_cv;
  std::optional<ssl::context> tls;
  // Open sessions, for the deadline sweep. A session adds itself when it is made and removes
  // itself in its destructor (under sessions_mu), so every entry is alive while the lock is
  // held. Declared before ioc: sessions destroyed with it still remove themselves.
  std::mutex sessions_mu;
  std::list<SessionBase*> sessions;
  net::io_context ioc;
  // Keeps the threads running while there is nothing to do (completions are posted later).
  std::optional<net::executor_work_guard<net::io_context::executor_type>> work;
  std::optional<tcp::acceptor> acceptor;
  std::vector<std::thread> threads;
  bool stopped = false;

  std::optional<net::steady_timer> sweeper;  // after ioc: destroyed before it

  void Accept();
  void Sweep();
  std::shared_ptr<const std::vector<std::string>> RouteHeaders() {
    std::lock_guard lock(route_mu);
    return route_headers;
  }
  void RequestDone() {
    if (inflight.fetch_sub(1) == 1) {
      std::lock_guard lock(mu);
      idle_cv.notify_all();
    }
  }
};

namespace {

// The status and message for a request that could not be read.
std::pair<int, std::string> ReadFailure(const beast::error_code& ec, const HttpOptions& o) {
  if (ec == http::error::body_limit) {
    return {413, "request body exceeds the limit of " + std::to_string(o.max_body_bytes) +
                     " bytes (max_request_bytes)"};
  }
  if (ec == http::error::header_limit) {
    return {431, "request headers exceed the limit of " + std::to_string(o.max_header_bytes) +
                     " bytes (max_header_bytes)"};
  }
  return {400, "malformed HTTP request: " + ec.message()};
}

template <class Stream>
class Session final : public SessionBase, public std::enable_shared_from_this<Session<Stream>> {
 public:
  template <class... Args>
  Session(HttpServer::Impl& server, Args&&... args)
      : server_(server), stream_(std::forward<Args>(args)...) {
    server_.connections.fetch_add(1);
    // Large bodies arrive in 64 KiB reads rather than Beast's default 512 bytes.
    buffer_.reserve(64 * 1024);
    std::lock_guard lock(server_.sessions_mu);
    registered_ = server_.sessions.insert(server_.sessions.end(), this);
  }
  ~Session() override {
    {
      std::lock_guard lock(server_.sessions_mu);
      server_.sessions.erase(registered_);
    }
    server_.connections.fetch_sub(1);
  }

  void ExpireIfLate() override {
    auto self = this->weak_from_this().lock();
    if (!self) return;  // being destroyed: its destructor waits for the sweep's lock
    net::post(stream_.get_executor(), [self = std::move(self)] {
      if (!self->Late(NowNs())) return;  // a new deadline was armed meanwhile
      self->Disarm();
      // Pending reads and writes complete with operation_aborted and the session ends.
      beast::error_code ignored;
      self->Lowest().socket().close(ignored);
    });
  }

  void Start() {
    beast::error_code ec;
    const auto ep = Lowest().socket().remote_endpoint(ec);
    if (!ec) {
      peer_address_ = ep.address().to_string();
      peer_port_ = ep.port();
    }
    if constexpr (kTls) {
      Arm(server_.options.idle_timeout);
      stream_.async_handshake(ssl::stream_base::server,
                              [self = this->shared_from_this()](beast::error_code ec) {
                                if (!ec) self->ReadHeader();
                              });
    } else {
      ReadHeader();
    }
  }

 private:
  static constexpr bool kTls = !std::is_same_v<Stream, beast::tcp_stream>;

  beast::tcp_stream& Lowest() { return beast::get_lowest_layer(stream_); }

  void ReadHeader() {
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(
        std::min<std::uint64_t>(server_.options.max_header_bytes, UINT32_MAX)));
    parser_->body_limit(server_.options.max_body_bytes);
    Arm(server_.options.idle_timeout);
    http::async_read_header(stream_, buffer_, *parser_,
                            [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
                              self->OnHeader(ec);
                            });
  }

  void OnHeader(beast::error_code ec) {
    if (ec) return OnReadError(ec);
    received_ = std::chrono::steady_clock::now();
    Arm(server_.options.body_timeout);
    const auto& req = parser_->get();
    if (beast::iequals(req[http::field::expect], "100-continue") && !parser_->is_done()) {
      // curl asks before sending large bodies; answering saves it a one-second wait.
      auto cont = std::make_shared<http::response<http::empty_body>>(http::status::continue_, 11);
      http::async_write(stream_, *cont,
                        [self = this->shared_from_this(), cont](beast::error_code ec, std::size_t) {
                          if (ec) return self->Close();
                          self->ReadBody();
                        });
      return;
    }
    ReadBody();
  }

  void ReadBody() {
    http::async_read(
        stream_, buffer_, *parser_,
        [self = this->shared_from_this()](beast::error_code ec, std::size_t) { self->OnRead(ec); });
  }

  void OnReadError(beast::error_code ec) {
    if (ec == http::error::end_of_stream || ec == net::error::eof ||
        ec == net::error::connection_reset || ec == beast::error::timeout ||
        ec == net::error::operation_aborted || ec == ssl::error::stream_truncated) {
      return Close();
    }
    auto [status, message] = ReadFailure(ec, server_.options);
    request_ = std::make_shared<HttpRequest>();
    request_->peer_address = peer_address_;
    request_->peer_port = peer_port_;
    request_->keep_alive = false;
    request_->received = std::chrono::steady_clock::now();
    if (parser_ && parser_->is_header_done()) {
      request_->method = std::string(parser_->get().method_string());
      request_->target = std::string(parser_->get().target());
    }
    HttpResponse response;
    response.status = status;
    response.body = EncodeError(message);
    server_.inflight.fetch_add(1);
    Write(std::move(response));
  }

  void OnRead(beast::error_code ec) {
    if (ec) return OnReadError(ec);
    Disarm();  // no deadline while the request is handled
    auto req = parser_->release();
    parser_.reset();
    request_ = std::make_shared<HttpRequest>();
    HttpRequest& r = *request_;
    r.method = std::string(req.method_string());
    r.target = std::string(req.target());
    r.body = std::move(req.body());
    r.authorization = std::string(req[http::field::authorization]);
    if (auto it = req.find("Inference-Header-Content-Length"); it != req.end()) {
      r.has_inference_header = true;
      r.inference_header_content_length = std::string(it->value());
    }
    r.content_encoding = std::string(req[http::field::content_encoding]);
    r.traceparent = std::string(req["traceparent"]);
    r.request_id = std::string(req["X-Request-ID"]);
    if (auto names = server_.RouteHeaders()) {
      for (const auto& name : *names) {
        if (auto it = req.find(name); it != req.end()) {
          r.route_headers.emplace_back(name, std::string(it->value()));
        }
      }
    }
    r.peer_address = peer_address_;
    r.peer_port = peer_port_;
    r.keep_alive = req.keep_alive();
    r.received = received_;
    server_.inflight.fetch_add(1);
    auto self = this->shared_from_this();
    server_.handler(request_, [self](HttpResponse&& response) {
      // Inline when already on the connection's executor (a batch run on the event loop), else
      // queued to it (a worker thread, or another loop thread's strand).
      net::dispatch(self->stream_.get_executor(), [self, response = std::move(response)]() mutable {
        self->Write(std::move(response));
      });
    });
  }

  void Write(HttpResponse&& response) {
    response_ = std::move(response);
    auto res = std::make_shared<http::response<http::string_body>>(
        static_cast<http::status>(response_.status), 11);
    res->set(http::field::server, "dlsys");
    if (!response_.content_type.empty()) {
      res->set(http::field::content_type, response_.content_type);
    }
    for (const auto& [name, value] : response_.headers) res->set(name, value);
    body_bytes_ = response_.body.size();
    res->body() = std::move(response_.body);
    res->keep_alive(request_->keep_alive && !server_.closing.load());
    res->prepare_payload();
    Arm(server_.options.idle_timeout);
    server_.writing.fetch_add(1);
    http::async_write(
        stream_, *res,
        [self = this->shared_from_this(), res](beast::error_code ec, std::size_t bytes) {
          self->OnWrite(ec, bytes, res->keep_alive());
        });
  }

  void OnWrite(beast::error_code ec, std::size_t bytes, bool keep_alive) {
    Disarm();
    if (server_.done) server_.done(*request_, response_, ec ? 0 : body_bytes_);
    if (server_.writing.fetch_sub(1) == 1) {
      std::lock_guard lock(server_.mu);
      server_.idle_cv.notify_all();
    }
    request_.reset();
    server_.RequestDone();
    if (ec || !keep_alive) return Close();
    ReadHeader();
  }

  void Close() {
    beast::error_code ec;
    if constexpr (kTls) {
      Lowest().expires_after(std::chrono::seconds(1));
      stream_.async_shutdown([self = this->shared_from_this()](beast::error_code) {
        beast::error_code ignored;
        self->Lowest().socket().shutdown(tcp::socket::shutdown_both, ignored);
      });
    } else {
      Lowest().socket().shutdown(tcp::socket::shutdown_send, ec);
    }
  }

  HttpServer::Impl& server_;
  Stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::shared_ptr<HttpRequest> request_;
  HttpResponse response_;  // the one being written (body moved out), for the done callback
  std::string peer_address_;
  int peer_port_ = 0;
  std::size_t body_bytes_ = 0;  // of the response being written
  std::chrono::steady_clock::time_point received_;
  std::list<SessionBase*>::iterator registered_;
};

}  // namespace

void HttpServer::Impl::Sweep() {
  {
    const auto now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                         std::chrono::steady_clock::now().time_since_epoch())
                         .count();
    std::lock_guard lock(sessions_mu);
    for (SessionBase* s : sessions) {
      if (s->Late(now)) s->ExpireIfLate();  // posts; the session stays alive through its handler
    }
  }
  // Deadlines are checked every quarter of the shorter timeout (10 ms .. 1 s): a late client is
  // cut off between its timeout and 1.25 times it.
  const auto period = std::clamp(std::min(options.idle_timeout, options.body_timeout) / 4,
                                 std::chrono::milliseconds(10), std::chrono::milliseconds(1000));
  sweeper->expires_after(period);
  sweeper->async_wait([this](beast::error_code ec) {
    if (!ec) Sweep();
  });
}

void HttpServer::Impl::Accept() {
  // One event-loop thread runs every handler in order: sessions need no strand.
  const auto executor = options.threads > 1 ? net::any_io_executor(net::make_strand(ioc))
                                            : net::any_io_executor(ioc.get_executor());
  acceptor->async_accept(executor, [this](beast::error_code ec, tcp::socket socket) {
    if (ec == net::error::operation_aborted || !acceptor->is_open()) return;
    if (!ec) {
      if (connections.load() >= options.max_connections) {
        beast::error_code ignored;
        socket.close(ignored);  // over the limit: refuse at once, before reading anything
      } else {
        socket.set_option(tcp::no_delay(true), ec);
        if (tls) {
          std::make_shared<Session<beast::ssl_stream<beast::tcp_stream>>>(*this, std::move(socket),
                                                                          *tls)
              ->Start();
        } else {
          std::make_shared<Session<beast::tcp_stream>>(*this, std::move(socket))->Start();
        }
      }
    }
    Accept();
  });
}

Result<std::unique_ptr<HttpServer>> HttpServer::Create(HttpOptions options, HttpHandler handler,
                                                       HttpDoneFn done) {
  auto server = std::unique_ptr<HttpServer>(new HttpServer());
  server->impl_ = std::make_unique<Impl>();
  Impl& impl = *server->impl_;
  impl.options = std::move(options);
  impl.handler = std::move(handler);
  impl.done = std::move(done);
  if (!impl.options.tls_cert.empty() || !impl.options.tls_key.empty()) {
    impl.tls.emplace(ssl::context::tls_server);
    impl.tls->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                          ssl::context::no_sslv3 | ssl::context::no_tlsv1 |
                          ssl::context::no_tlsv1_1 | ssl::context::single_dh_use);
    beast::error_code ec;
    impl.tls->use_certificate_chain_file(impl.options.tls_cert, ec);
    if (ec) {
      return Fail(Code::kInvalid,
                  "cannot load TLS certificate '" + impl.options.tls_cert + "': " + ec.message(),
                  {"give a PEM certificate chain (tls_cert / --tls-cert)"});
    }
    impl.tls->use_private_key_file(impl.options.tls_key, ssl::context::pem, ec);
    if (ec) {
      return Fail(Code::kInvalid,
                  "cannot load TLS private key '" + impl.options.tls_key + "': " + ec.message(),
                  {"give the PEM private key of the certificate (tls_key / --tls-key)"});
    }
  }
  return server;
}

HttpServer::~HttpServer() { Stop(); }

bool HttpServer::tls() const { return impl_->tls.has_value(); }

Result<int> HttpServer::Listen(const std::string& host, int port) {
  beast::error_code ec;
  const auto address = net::ip::make_address(host, ec);
  if (ec) {
    return Fail(Code::kUsage, "cannot listen on '" + host + "': not an IP address",
                {"give an address such as 127.0.0.1, ::1 or 0.0.0.0 (--host)"});
  }
  const tcp::endpoint endpoint(address, static_cast<unsigned short>(port));
  auto& acceptor = impl_->acceptor.emplace(impl_->ioc);
  const auto fail = [&](const char* what) {
    return Fail(Code::kUnavailable,
                std::string("cannot listen on ") + host + ":" + std::to_string(port) + ": " + what +
                    ": " + ec.message(),
                {"choose another --port, or stop the process using it"});
  };
  acceptor.open(endpoint.protocol(), ec);
  if (ec) return fail("open");
  acceptor.set_option(net::socket_base::reuse_address(true), ec);
  acceptor.bind(endpoint, ec);
  if (ec) return fail("bind");
  acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec) return fail("listen");
  return static_cast<int>(acceptor.local_endpoint().port());
}

void HttpServer::Start() {
  impl_->work.emplace(impl_->ioc.get_executor());
  impl_->sweeper.emplace(impl_->ioc);
  impl_->Sweep();
  impl_->Accept();
  const int n = std::max(1, impl_->options.threads);
  for (int i = 0; i < n; ++i) impl_->threads.emplace_back([this] {
      core::NameThisThread("dlsys-http");
      impl_->ioc.run();
    });
}

void HttpServer::Post(std::function<void()> task) { net::post(impl_->ioc, std::move(task)); }

bool HttpServer::WaitWritten(std::chrono::steady_clock::time_point until) {
  std::unique_lock lock(impl_->mu);
  return impl_->idle_cv.wait_until(lock, until, [this] { return impl_->writing.load() == 0; });
}

void HttpServer::SetClosing() { impl_->closing.store(true); }

void HttpServer::SetRouteHeaders(std::vector<std::string> names) {
  auto list = names.empty() ? nullptr
                            : std::make_shared<const std::vector<std::string>>(std::move(names));
  std::lock_guard lock(impl_->route_mu);
  impl_->route_headers = std::move(list);
}

bool HttpServer::StopAccepting(std::chrono::steady_clock::time_point until) {
  net::post(impl_->ioc, [this] {
    beast::error_code ignored;
    if (impl_->acceptor) impl_->acceptor->close(ignored);
  });
  std::unique_lock lock(impl_->mu);
  return impl_->idle_cv.wait_until(lock, until, [this] { return impl_->inflight.load() == 0; });
}

void HttpServer::Stop() {
  if (!impl_ || impl_->stopped) return;
  impl_->stopped = true;
  impl_->work.reset();
  impl_->ioc.stop();
  for (auto& t : impl_->threads) {
    if (t.joinable()) t.join();
  }
  impl_->threads.clear();
}

}  // namespace dlsys::serve::internal
