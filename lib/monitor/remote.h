// Reading a log on another host through the system's OpenSSH client:
// `dlsys monitor ssh://[USER@]HOST[:PORT]/PATH`.
//
// Nothing is installed on the remote host: dlsys runs `ssh` (package openssh-client) with an
// argv (never a local shell) and asks the remote login shell to run one of
//   follow: env LC_ALL=C tail -c 1 -- 'PATH' >/dev/null && exec env LC_ALL=C tail -F -n +1 --
//   'PATH' once:   exec env LC_ALL=C cat -- 'PATH'
// The remote shell parses that command, so PATH is single-quoted (a quote as '\''), which
// every POSIX shell (sh, dash, bash, ksh, zsh) and csh read back byte for byte. The first
// `tail -n 0` makes a missing or unreadable file an error at once instead of `tail -F`
// waiting for it to appear; LC_ALL=C keeps the remote error messages in English so that
// "No such file or directory" can be told apart (kNotFound).
//
// Which keys, jump hosts and known_hosts ssh uses is ssh's business (~/.ssh/config, an agent);
// SshOptions adds an ssh_config file (-F) and -o options. ssh runs with BatchMode=yes: it never
// prompts (stdin is /dev/null and it may share the user's terminal), so a host key that is not
// yet known, or a key that needs a passphrase without an agent, is an error, not a prompt.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"

namespace dlsys::monitor {

// A parsed ssh:// URL.
struct SshTarget {
  std::string user;  // empty: ssh decides (User in ~/.ssh/config, else the local user name)
  std::string host;  // a name, an IPv4 address or an IPv6 address without its brackets
  int port = 0;      // 0: ssh decides (Port in ~/.ssh/config, else 22)
  // Absolute ("/var/log/serve.log"), or relative to the remote home ("~/serve.log": the URL
  // form ssh://host/~/serve.log). Never empty, never a control character.
  std::string path;

  // The URL again, for messages: ssh://user@host:port/path ("[::1]" for IPv6).
  std::string Url() const;
  // user@host, host or [::1]:2222, for "cannot read ... on HOST" messages.
  std::string Where() const;
};

// True when `arg` starts with "ssh://" (any case): the caller then uses ParseSshUrl instead of
// opening a local file. (A local file of that name is reached as ./ssh://...)
bool IsSshUrl(std::string_view arg);

// Parses ssh://[USER@]HOST[:PORT]/PATH. Strict, because USER and HOST end up on ssh's command
// line: USER is letters, digits, '.', '_' and '-'; HOST the same, or an IPv6 literal in
// brackets ([::1], [fe80::1%eth0]); neither may start with '-' (an ssh option). PORT is
// 1..65535. PATH is everything after HOST[:PORT], taken literally (no %-decoding, so '%', '?',
// '#' and spaces are part of the file name); it must start with '/' and contain no control
// character. "/~/rest" means "~/rest", relative to the remote user's home. kUsage otherwise,
// naming the problem and showing an example.
[[nodiscard]] Result<SshTarget> ParseSshUrl(std::string_view url);

// `s` single-quoted for a POSIX shell: 'it'\''s' for "it's". Any bytes (the caller keeps
// control characters out of command lines).
std::string ShellQuote(std::string_view s);

// The command the remote shell runs (see the top of this file). A "~/rest" path becomes
// ~/'rest' so that the remote shell expands the tilde and nothing else.
std::string RemoteCommand(const SshTarget& target, bool follow);

struct SshOptions {
  // The ssh client: a bare name is looked up on PATH; a name with a '/' is used as is.
  std::string program = "ssh";
  // An ssh_config file given to ssh as -F FILE (ssh then reads neither ~/.ssh/config nor
  // /etc/ssh/ssh_config). Empty: ssh reads those as usual.
  std::string config_file;
  // KEY=VALUE options given to ssh as -o KEY=VALUE, before dlsys's own, so they win (ssh keeps
  // the first value it sees for an option): "IdentityFile=~/.ssh/ci", "ProxyJump=bastion".
  std::vector<std::string> options;
};

// Options from the environment: DLSYS_SSH_CONFIG=FILE (-F FILE) and DLSYS_SSH_OPTIONS, a
// whitespace-separated list of KEY=VALUE (each -o KEY=VALUE; a value with spaces needs the
// config file). kUsage naming the variable if an entry is not KEY=VALUE or has a control
// character.
[[nodiscard]] Result<SshOptions> SshOptionsFromEnv();

// The argv OpenSsh runs (argv[0] = options.program as given):
//   ssh -T -a -x [-p PORT] [-l USER] [-F CONFIG] [-o OPTION]... -o BatchMode=yes
//       -o ConnectTimeout=10 -o ServerAliveInterval=10 -o ClearAllForwardings=yes
//       -- HOST REMOTE_COMMAND
std::vector<std::string> SshArgv(const SshTarget& target, bool follow, const SshOptions& options);

// How ssh ended.
struct RemoteExit {
  int exit_code = -1;       // ssh's exit status (the remote command's, or 255); -1 if signalled
  int signal = 0;           // the signal that killed ssh, or 0
  bool stopped = false;     // Stop() was called before ssh ended by itself
  std::string stderr_tail;  // the last bytes ssh wrote to its stderr (at most 8 KiB)
};

// A running ssh whose standard output is the remote log. Owns the child process, the read end
// of its stdout pipe and a thread that keeps the tail of its stderr (so ssh's messages never
// reach the user's terminal during a live view, yet explain a failure). ssh runs in its own
// process group with the default signal mask and dispositions, so a Ctrl-C on the terminal
// reaches dlsys only, and dlsys stops ssh when it chooses to. Movable; not thread-safe (one
// owner thread), except that the stderr thread runs on its own.
class RemoteStream {
 public:
  RemoteStream(RemoteStream&&) noexcept;
  RemoteStream& operator=(RemoteStream&&) noexcept;
  ~RemoteStream();  // Stop()s ssh if it still runs, then closes everything

  // The read end of ssh's stdout (O_CLOEXEC, blocking), valid until destruction. Read it, or
  // give "/dev/fd/N" to a reader. End of file: ssh ended (the file was read whole, or it failed).
  int fd() const;
  pid_t pid() const;
  const SshTarget& target() const;

  // Waits until ssh ends and reaps it; call it after fd() reached end of file or after Stop().
  // Later calls return the same result.
  const RemoteExit& Wait();
  // SIGTERM to ssh, SIGKILL if it has not ended after grace_ms, then reaps it (by its PID).
  // ssh closes the connection, and the remote tail ends when it next writes or when the
  // remote sshd closes its pipes. No-op once reaped.
  void Stop(int grace_ms = 2000);
  // Wait(), then what it means: ok for exit 0 or after Stop(); otherwise an Error naming the
  // host and ssh's last stderr line (terminal-safe):
  //   kNotFound     the remote file does not exist ("No such file or directory")
  //   kUnavailable  ssh could not connect or log in (exit 255), or the remote host lacks
  //                 tail/cat (exit 126/127), or ssh was killed by a signal
  //   kInvalid      the remote command failed otherwise (permission denied, a directory)
  [[nodiscard]] Result<void> Finish();
  // The stderr bytes kept so far (for a live view's status line).
  std::string StderrTail() const;

 private:
  friend Result<RemoteStream> OpenSsh(const SshTarget&, bool, const SshOptions&);
  struct Impl;
  explicit RemoteStream(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Starts ssh (posix_spawn, argv from SshArgv; stdin /dev/null, stdout a pipe, stderr a pipe;
// every other descriptor closed in the child). kUnavailable, naming the Debian package
// openssh-client, if `options.program` is not found on PATH; kInternal if the spawn fails.
// Connection and login errors surface later, through Finish().
[[nodiscard]] Result<RemoteStream> OpenSsh(const SshTarget& target, bool follow,
                                           const SshOptions& options);

}  // namespace dlsys::monitor
