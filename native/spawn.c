/*
 * gatewire's process spawner for CGI scripts (Linux): vfork + exec on a libuv worker thread, a
 * pidfd exit watch, and pipe readers, all without a child_process.ChildProcess or a net.Socket.
 *
 * Why: Node 20's child_process.spawn() has libuv fork() the whole server, so every spawn copies
 * the page tables of a process of 60-400 MB (1.2 ms at 100 MB RSS, measured in
 * bench/cgi-spawn.mjs), on the event loop. vfork() shares the address space until execve, so
 * the cost does not grow with the server's size; running it on a worker thread keeps the wait
 * for the child's execve (150-200 us for a shell script) off the event loop. Reading the
 * script's stdout and stderr through a uv_poll here instead of two net.Sockets saves the stream
 * machinery a request would otherwise build and tear down twice.
 *
 * JS API (loaded by src/cgi-host/spawn.ts, which also holds the fallback to child_process):
 *
 *   spawn(file, argv, envp, cwd, stdin, umask, uid, gid, onSpawn, onExit) -> undefined | -errno
 *     file    absolute path of the program (PATH look-up is the caller's)
 *     argv    string[] (argv[0] included), UTF-8 (node:fs strings); file and cwd likewise
 *     envp    string[] of "NAME=value" as byte strings, one char per byte (latin1: every byte
 *             0x01-0xFF passes as is, C-6); the caller keeps chars above 0xFF out. No NUL.
 *     cwd     the child's working directory
 *     stdin   -1: a pipe (stdinFd is its write end); -2: /dev/null; n >= 0: that fd (duplicated
 *             before spawn() returns, so the caller may close it at once)
 *     umask, uid, gid   set in the child before exec; -1: inherit the server's
 *     onSpawn ([pid, stdinFd, stdoutFd, stderrFd] | -errno), called from the event loop once the
 *             child has exec'd (or failed to: ENOENT, EACCES, ENOEXEC, EPERM...)
 *     onExit  (code: number | null, signal: number) called once the child exited and was reaped
 *   The child leads its own session and process group (setsid), has an empty signal mask,
 *   every signal at its default disposition (Node ignores SIGPIPE), and no file descriptor
 *   beyond 0-2. The returned fds are the parent's ends of the pipes, close-on-exec; -1 where none.
 *
 *   readPipe(fd, onData) -> reader: reads fd (made non-blocking) from the event loop and calls
 *     onData(chunk: Buffer) per read, then onData(null, 0) at EOF or onData(null, -errno); the fd
 *     is closed after that last call. pausePipe(reader), resumePipe(reader), closePipe(reader)
 *     (closes without a last call; no call at all after it).
 *
 *   kill(pid, signal) -> 0 | -errno: kill(2) without a JS exception for ESRCH.
 *   supported() -> boolean: pidfd_open works here (Linux 5.3+).
 *
 *   notify(socketPath, message) -> 0 | -errno: sd_notify(3) without libsystemd. Sends message
 *     (a Buffer: "READY=1", "RELOADING=1\nMONOTONIC_USEC=...", ...) as one datagram on a new
 *     AF_UNIX SOCK_DGRAM socket to socketPath (a Buffer: $NOTIFY_SOCKET's bytes; a leading '@'
 *     names the abstract namespace), then closes the socket. Blocking, but a datagram to a local
 *     socket is queued or refused at once (EAGAIN when the receiver's queue is full). The kernel
 *     attaches the sender's credentials for a receiver with SO_PASSCRED (systemd checks the pid).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <node_api.h>
#include <uv.h>

#define CHECK(call)                                                     \
  do {                                                                  \
    if ((call) != napi_ok) {                                            \
      napi_throw_error(env, NULL, "gatewire spawn: N-API call failed"); \
      return NULL;                                                      \
    }                                                                   \
  } while (0)

static int pidfd_open(pid_t pid) { return (int)syscall(SYS_pidfd_open, pid, 0); }

static napi_value int_value(napi_env env, int value) {
  napi_value out;
  napi_create_int32(env, value, &out);
  return out;
}

/* Calls a JS function from a libuv callback: make_callback (not call_function) runs nextTicks
 * and microtasks afterwards, as any I/O callback in Node does; an exception becomes an
 * 'uncaughtException'. The caller holds a handle scope. */
static void call_js(napi_env env, napi_async_context async, napi_ref fn, size_t argc, napi_value *argv) {
  napi_value cb, recv;
  napi_get_reference_value(env, fn, &cb);
  napi_get_global(env, &recv);
  if (napi_make_callback(env, async, recv, cb, argc, argv, NULL) == napi_pending_exception) {
    napi_value err;
    napi_get_and_clear_last_exception(env, &err);
    napi_fatal_exception(env, err);
  }
}

/* ----------------------------------------------------------------------------- per-env state */

typedef struct exit_watch exit_watch;
typedef struct pipe_reader pipe_reader;

/*
 * What one Node environment (the main thread, or a worker_thread) has running here. When the
 * environment is torn down (a worker ends, the process exits) its cleanup hook stops every
 * watch and reader, so no libuv callback ever reaches a dead environment, and kills the
 * scripts still running, which nothing would reap any more. Allocated once per environment and
 * kept (a few bytes): a handle closing after the teardown still points at it.
 */
typedef struct {
  exit_watch *watches;
  pipe_reader *readers;
  int closing;
} addon_state;

/* ----------------------------------------------------------------------------- exit watch */

struct exit_watch {
  uv_poll_t poll;
  napi_env env;
  addon_state *state;
  exit_watch *prev, *next;
  napi_ref on_exit;
  napi_async_context async;
  pid_t pid;
  int pidfd;
};

static void watch_unlink(exit_watch *w) {
  if (w->prev != NULL) w->prev->next = w->next;
  else w->state->watches = w->next;
  if (w->next != NULL) w->next->prev = w->prev;
  w->prev = w->next = NULL;
}

static void watch_closed(uv_handle_t *handle) {
  exit_watch *w = (exit_watch *)handle->data;
  close(w->pidfd);
  free(w);
}

/* Stops a watch for good: no more JS calls; the handle closes on the loop. */
static void watch_close(exit_watch *w) {
  watch_unlink(w);
  napi_delete_reference(w->env, w->on_exit);
  napi_async_destroy(w->env, w->async);
  uv_close((uv_handle_t *)&w->poll, watch_closed);
}

static void on_pidfd(uv_poll_t *poll, int status, int events) {
  (void)status;
  (void)events;
  exit_watch *w = (exit_watch *)poll->data;
  int wstatus = 0;
  pid_t got;
  do got = waitpid(w->pid, &wstatus, WNOHANG);
  while (got == -1 && errno == EINTR);
  if (got == 0) return; /* not yet (spurious wake-up) */

  uv_poll_stop(poll);
  napi_env env = w->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) == napi_ok) {
    napi_value argv[2];
    if (got == w->pid && WIFEXITED(wstatus)) {
      argv[0] = int_value(env, WEXITSTATUS(wstatus));
      argv[1] = int_value(env, 0);
    } else if (got == w->pid && WIFSIGNALED(wstatus)) {
      napi_get_null(env, &argv[0]);
      argv[1] = int_value(env, WTERMSIG(wstatus));
    } else { /* ECHILD: someone else reaped it; an unknown end */
      napi_get_null(env, &argv[0]);
      argv[1] = int_value(env, 0);
    }
    call_js(env, w->async, w->on_exit, 2, argv);
    napi_close_handle_scope(env, scope);
  }
  watch_close(w);
}

/* ----------------------------------------------------------------------------- arguments */

static void free_strings(char **list) {
  if (list == NULL) return;
  for (char **p = list; *p != NULL; p++) free(*p);
  free(list);
}

/* How a JS string becomes bytes: its UTF-8 (text), or one byte per char (a byte string). */
typedef napi_status (*string_getter)(napi_env, napi_value, char *, size_t, size_t *);

static char *get_string_as(napi_env env, napi_value value, string_getter get) {
  size_t len = 0;
  if (get(env, value, NULL, 0, &len) != napi_ok) return NULL;
  char *s = malloc(len + 1);
  if (s == NULL) return NULL;
  size_t got = 0;
  if (get(env, value, s, len + 1, &got) != napi_ok || got != len || strlen(s) != len) {
    free(s); /* not a string, or a NUL inside: execve would cut it short */
    return NULL;
  }
  return s;
}

static char *get_string(napi_env env, napi_value value) { return get_string_as(env, value, napi_get_value_string_utf8); }

/* A NULL-terminated char*[] from a JS string[]; NULL when anything is not a clean string. */
static char **get_strings(napi_env env, napi_value array, string_getter get) {
  uint32_t n = 0;
  if (napi_get_array_length(env, array, &n) != napi_ok) return NULL;
  char **list = calloc((size_t)n + 1, sizeof(char *));
  if (list == NULL) return NULL;
  for (uint32_t i = 0; i < n; i++) {
    napi_value item;
    if (napi_get_element(env, array, i, &item) != napi_ok || (list[i] = get_string_as(env, item, get)) == NULL) {
      free_strings(list);
      return NULL;
    }
  }
  return list;
}

/* fds 0-2 of the child are made with dup2; a source fd that is itself 0-2 (a server started
 * with closed stdio) would be overwritten by an earlier dup2, so sources live at 3 or above. */
static int above_stdio(int fd) {
  if (fd > 2) return fd;
  int moved = fcntl(fd, F_DUPFD_CLOEXEC, 3);
  close(fd);
  return moved;
}

static void close_fd(int *fd) {
  if (*fd >= 0) close(*fd);
  *fd = -1;
}

/* ----------------------------------------------------------------------------- spawn */

/* One spawn request: filled on the main thread, spawned on a libuv worker thread, answered on
 * the main thread. */
typedef struct {
  napi_async_work work;
  addon_state *state;
  napi_ref on_spawn;
  napi_ref on_exit;
  char *file;
  char *cwd;
  char **argv;
  char **envp;
  int stdin_mode; /* -1 pipe, -2 /dev/null, else an fd of ours (a dup, closed afterwards) */
  int umask;      /* -1: inherit */
  int uid, gid;   /* -1: keep */
  /* results */
  int error;
  pid_t pid;
  int pidfd;
  int parent_fds[3]; /* stdin write end, stdout read end, stderr read end; -1 where none */
} spawn_job;

static void free_job(napi_env env, spawn_job *job) {
  if (job->on_spawn != NULL) napi_delete_reference(env, job->on_spawn);
  if (job->on_exit != NULL) napi_delete_reference(env, job->on_exit);
  if (job->work != NULL) napi_delete_async_work(env, job->work);
  if (job->stdin_mode >= 0) close(job->stdin_mode);
  free(job->file);
  free(job->cwd);
  free_strings(job->argv);
  free_strings(job->envp);
  free(job);
}

/*
 * vfork + exec. The child borrows this thread's stack and the whole address space until execve,
 * so it makes plain system calls only and never returns; this thread sleeps meanwhile. Signals
 * stay blocked until the child has set every disposition back to the default, so no handler of
 * Node's can run in the child. uid/gid are switched with raw system calls: glibc's setuid()
 * would signal every thread of the server to keep them in step (setxid), which a vfork child
 * must not do. Returns the pid, or -1 with errno set: exec failures included, which the child
 * reports through the shared memory before this thread resumes.
 */
static pid_t start_child(const spawn_job *job, int child_in, int child_out, int child_err) {
  sigset_t all, saved;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &saved);
  volatile int child_errno = 0;
  pid_t pid = vfork();
  if (pid == 0) {
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; sig++) sigaction(sig, &dfl, NULL); /* KILL, STOP and glibc's own refuse: fine */
    if (setsid() < 0 || dup2(child_in, 0) < 0 || dup2(child_out, 1) < 0 || dup2(child_err, 2) < 0 ||
        chdir(job->cwd) < 0)
      goto failed;
    if (syscall(SYS_close_range, 3, ~0U, 0) != 0) /* Linux 5.9+; before that, one by one */
      for (int fd = 3; fd < 65536; fd++) close(fd);
    if (job->umask >= 0) umask((mode_t)job->umask);
    if (job->gid >= 0 && (syscall(SYS_setgroups, 0, NULL) != 0 || syscall(SYS_setgid, job->gid) != 0)) goto failed;
    if (job->uid >= 0 && syscall(SYS_setuid, job->uid) != 0) goto failed;
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    execve(job->file, job->argv, job->envp);
  failed:
    child_errno = errno;
    _exit(127);
  }
  int fork_errno = errno;
  pthread_sigmask(SIG_SETMASK, &saved, NULL);
  if (pid < 0) {
    errno = fork_errno;
    return -1;
  }
  if (child_errno != 0) {
    while (waitpid(pid, NULL, 0) == -1 && errno == EINTR) {
    }
    errno = child_errno;
    return -1;
  }
  return pid;
}

/* Worker thread: no N-API here. */
static void spawn_execute(napi_env env, void *data) {
  (void)env;
  spawn_job *job = data;
  int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1};
  int child_in = -1;
  job->pid = -1;
  job->pidfd = -1;

  if (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0) goto fail;
  if (job->stdin_mode == -1) {
    if (pipe2(in, O_CLOEXEC) != 0) goto fail;
    child_in = in[0];
    in[0] = -1;
  } else if (job->stdin_mode == -2) {
    if ((child_in = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0) goto fail;
  } else {
    child_in = job->stdin_mode;
    job->stdin_mode = -2; /* ownership moves here */
  }
  if ((child_in = above_stdio(child_in)) < 0 || (out[1] = above_stdio(out[1])) < 0 ||
      (err[1] = above_stdio(err[1])) < 0)
    goto fail;

  pid_t pid = start_child(job, child_in, out[1], err[1]);
  if (pid < 0) goto fail;
  /* The child runs: from here on a failure must not leave it behind. */
  if ((job->pidfd = pidfd_open(pid)) < 0) {
    int e = errno;
    kill(-pid, SIGKILL);
    while (waitpid(pid, NULL, 0) == -1 && errno == EINTR) {
    }
    errno = e;
    goto fail;
  }
  job->pid = pid;
  job->error = 0;
  job->parent_fds[0] = in[1];
  job->parent_fds[1] = out[0];
  job->parent_fds[2] = err[0];
  in[1] = out[0] = err[0] = -1;
  goto done;

fail:
  job->error = errno != 0 ? errno : EIO;
done:
  close_fd(&child_in);
  close_fd(&in[0]);
  close_fd(&in[1]);
  close_fd(&out[0]);
  close_fd(&out[1]);
  close_fd(&err[0]);
  close_fd(&err[1]);
}

/* Main thread: start the exit watch, then tell JS. */
static void spawn_complete(napi_env env, napi_status status, void *data) {
  spawn_job *job = data;
  napi_value result;
  if (status != napi_ok && job->error == 0) job->error = ECANCELED;

  exit_watch *w = NULL;
  uv_loop_t *loop = NULL;
  if (job->error == 0 && job->state->closing) {
    /* The environment is going away: nobody will watch this script. */
    kill(-job->pid, SIGKILL);
    while (waitpid(job->pid, NULL, 0) == -1 && errno == EINTR) {
    }
    close(job->pidfd);
    for (int i = 0; i < 3; i++) close_fd(&job->parent_fds[i]);
    free_job(env, job);
    return;
  }
  if (job->error == 0) {
    w = calloc(1, sizeof(*w));
    if (w == NULL || napi_get_uv_event_loop(env, &loop) != napi_ok || uv_poll_init(loop, &w->poll, job->pidfd) != 0) {
      free(w);
      kill(-job->pid, SIGKILL);
      while (waitpid(job->pid, NULL, 0) == -1 && errno == EINTR) {
      }
      close(job->pidfd);
      for (int i = 0; i < 3; i++) close_fd(&job->parent_fds[i]);
      job->error = ENOMEM;
    }
  }
  if (job->error != 0) {
    result = int_value(env, -job->error);
  } else {
    napi_value resource_name;
    w->env = env;
    w->state = job->state;
    w->next = job->state->watches;
    if (w->next != NULL) w->next->prev = w;
    job->state->watches = w;
    w->pid = job->pid;
    w->pidfd = job->pidfd;
    w->poll.data = w;
    w->on_exit = job->on_exit; /* the reference moves to the watch */
    job->on_exit = NULL;
    napi_create_string_utf8(env, "gatewire:cgi-exit", NAPI_AUTO_LENGTH, &resource_name);
    napi_async_init(env, NULL, resource_name, &w->async);
    /* cannot fail on a fresh handle of a valid fd: epoll errors would reach on_pidfd */
    (void)uv_poll_start(&w->poll, UV_READABLE, on_pidfd);
    napi_create_array_with_length(env, 4, &result);
    int values[4] = {job->pid, job->parent_fds[0], job->parent_fds[1], job->parent_fds[2]};
    for (uint32_t i = 0; i < 4; i++) napi_set_element(env, result, i, int_value(env, values[i]));
  }

  napi_value cb, recv;
  napi_get_reference_value(env, job->on_spawn, &cb);
  napi_get_global(env, &recv);
  free_job(env, job);
  /* complete callbacks run inside a callback scope: Node reports a throw as uncaught itself. */
  napi_call_function(env, recv, cb, 1, &result, NULL);
}

static napi_value Spawn(napi_env env, napi_callback_info info) {
  size_t argc = 10;
  napi_value args[10];
  CHECK(napi_get_cb_info(env, info, &argc, args, NULL, NULL));
  int32_t ints[4]; /* stdin, umask, uid, gid */
  napi_valuetype t8, t9;
  int ok = argc == 10 && napi_typeof(env, args[8], &t8) == napi_ok && napi_typeof(env, args[9], &t9) == napi_ok &&
           t8 == napi_function && t9 == napi_function;
  for (int i = 0; ok && i < 4; i++) ok = napi_get_value_int32(env, args[4 + i], &ints[i]) == napi_ok;
  if (!ok) {
    napi_throw_type_error(env, NULL, "spawn(file, argv, envp, cwd, stdin, umask, uid, gid, onSpawn, onExit)");
    return NULL;
  }
  spawn_job *job = calloc(1, sizeof(*job));
  if (job == NULL) {
    napi_throw_error(env, "ENOMEM", "spawn: out of memory");
    return NULL;
  }
  job->stdin_mode = -2;
  napi_get_instance_data(env, (void **)&job->state);
  job->umask = ints[1] < 0 ? -1 : ints[1] & 0777;
  job->uid = ints[2] < 0 ? -1 : ints[2];
  job->gid = ints[3] < 0 ? -1 : ints[3];
  job->file = get_string(env, args[0]);
  job->cwd = get_string(env, args[3]);
  job->argv = get_strings(env, args[1], napi_get_value_string_utf8);
  job->envp = get_strings(env, args[2], napi_get_value_string_latin1);
  if (job->file == NULL || job->cwd == NULL || job->argv == NULL || job->envp == NULL) {
    free_job(env, job);
    napi_throw_type_error(env, "ERR_INVALID_ARG_VALUE", "spawn: file, cwd, argv and envp must be strings without NUL bytes");
    return NULL;
  }
  /* A given stdin fd is duplicated now: the caller may close its own as soon as we return. */
  int stdin_mode = ints[0];
  if (stdin_mode >= 0 && (stdin_mode = fcntl(stdin_mode, F_DUPFD_CLOEXEC, 3)) < 0) {
    int e = errno;
    free_job(env, job);
    return int_value(env, -e);
  }
  job->stdin_mode = stdin_mode < -2 ? -2 : stdin_mode;
  napi_value resource_name;
  if (napi_create_reference(env, args[8], 1, &job->on_spawn) != napi_ok ||
      napi_create_reference(env, args[9], 1, &job->on_exit) != napi_ok ||
      napi_create_string_utf8(env, "gatewire:cgi-spawn", NAPI_AUTO_LENGTH, &resource_name) != napi_ok ||
      napi_create_async_work(env, NULL, resource_name, spawn_execute, spawn_complete, job, &job->work) != napi_ok ||
      napi_queue_async_work(env, job->work) != napi_ok) {
    free_job(env, job);
    napi_throw_error(env, NULL, "spawn: could not queue the spawn");
    return NULL;
  }
  return NULL; /* undefined */
}

/* ----------------------------------------------------------------------------- pipe readers */

/* Reads one pipe from the event loop. Freed when both the poll handle is closed and the JS
 * object holding it was collected, so a late pausePipe() from JS never touches freed memory. */
struct pipe_reader {
  uv_poll_t poll;
  napi_env env;
  addon_state *state;
  pipe_reader *prev, *next;
  napi_ref on_data;
  napi_async_context async;
  int fd;
  int reading; /* poll started */
  int closed;  /* no more calls to JS; poll closing or closed */
  int handle_gone;
  int object_gone;
};

/* One read buffer for every pipe of a thread: reads happen on the event loop's thread, one at a
 * time (per thread: the addon may also be loaded in worker_threads, each with its own loop). */
static _Thread_local char read_buffer[64 * 1024];

static void reader_maybe_free(pipe_reader *r) {
  if (r->handle_gone && r->object_gone) free(r);
}

static void reader_handle_closed(uv_handle_t *handle) {
  pipe_reader *r = handle->data;
  close(r->fd);
  r->handle_gone = 1;
  reader_maybe_free(r);
}

static void reader_close(pipe_reader *r) {
  if (r->closed) return;
  r->closed = 1;
  if (r->prev != NULL) r->prev->next = r->next;
  else r->state->readers = r->next;
  if (r->next != NULL) r->next->prev = r->prev;
  r->prev = r->next = NULL;
  napi_delete_reference(r->env, r->on_data);
  napi_async_destroy(r->env, r->async);
  uv_close((uv_handle_t *)&r->poll, reader_handle_closed);
}

static void reader_finalize(napi_env env, void *data, void *hint) {
  (void)hint;
  pipe_reader *r = data;
  r->object_gone = 1;
  if (!r->closed) { /* collected while open: nobody can stop it any more */
    r->env = env;
    reader_close(r);
    return;
  }
  reader_maybe_free(r);
}

static void on_pipe_readable(uv_poll_t *poll, int status, int events) {
  (void)events;
  pipe_reader *r = poll->data;
  napi_env env = r->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  /* A few reads per wake-up, as long as JS wants more: a 64 KiB pipe fills in one. */
  for (int i = 0; i < 4 && r->reading && !r->closed; i++) {
    ssize_t n = status < 0 ? status : read(r->fd, read_buffer, sizeof read_buffer);
    if (n < 0 && status >= 0 && (errno == EAGAIN || errno == EINTR)) break;
    napi_value argv[2];
    if (n > 0) {
      void *copy;
      napi_create_buffer_copy(env, (size_t)n, read_buffer, &copy, &argv[0]);
      call_js(env, r->async, r->on_data, 1, argv);
      if ((size_t)n < sizeof read_buffer) break; /* drained */
      continue;
    }
    /* EOF or an error: the last call, then the fd is closed */
    napi_get_null(env, &argv[0]);
    argv[1] = int_value(env, n == 0 ? 0 : status < 0 ? status : -errno);
    napi_ref fn = r->on_data;
    napi_async_context async = r->async;
    uv_poll_stop(poll);
    r->reading = 0;
    call_js(env, async, fn, 2, argv);
    reader_close(r);
    break;
  }
  napi_close_handle_scope(env, scope);
}

static pipe_reader *get_reader(napi_env env, napi_value value) {
  void *data = NULL;
  if (napi_get_value_external(env, value, &data) != napi_ok) {
    napi_throw_type_error(env, NULL, "expected a pipe reader");
    return NULL;
  }
  return data;
}

static napi_value ReadPipe(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value args[2];
  int32_t fd;
  napi_valuetype t;
  CHECK(napi_get_cb_info(env, info, &argc, args, NULL, NULL));
  if (argc < 2 || napi_get_value_int32(env, args[0], &fd) != napi_ok || napi_typeof(env, args[1], &t) != napi_ok ||
      t != napi_function || fd < 0) {
    napi_throw_type_error(env, NULL, "readPipe(fd, onData)");
    return NULL;
  }
  pipe_reader *r = calloc(1, sizeof(*r));
  uv_loop_t *loop;
  if (r == NULL || napi_get_uv_event_loop(env, &loop) != napi_ok || uv_poll_init(loop, &r->poll, fd) != 0) {
    free(r);
    napi_throw_error(env, NULL, "readPipe: cannot watch the fd");
    return NULL;
  }
  napi_value resource_name, external;
  r->env = env;
  napi_get_instance_data(env, (void **)&r->state);
  r->next = r->state->readers;
  if (r->next != NULL) r->next->prev = r;
  r->state->readers = r;
  r->fd = fd;
  r->poll.data = r;
  napi_create_reference(env, args[1], 1, &r->on_data);
  napi_create_string_utf8(env, "gatewire:cgi-pipe", NAPI_AUTO_LENGTH, &resource_name);
  napi_async_init(env, NULL, resource_name, &r->async);
  CHECK(napi_create_external(env, r, reader_finalize, NULL, &external));
  r->reading = uv_poll_start(&r->poll, UV_READABLE, on_pipe_readable) == 0;
  return external;
}

static napi_value PipeControl(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value arg;
  void *what;
  CHECK(napi_get_cb_info(env, info, &argc, &arg, NULL, &what));
  pipe_reader *r = get_reader(env, arg);
  if (r == NULL || r->closed) return NULL;
  switch ((intptr_t)what) {
    case 0: /* pause */
      if (r->reading) uv_poll_stop(&r->poll);
      r->reading = 0;
      break;
    case 1: /* resume */
      if (!r->reading) r->reading = uv_poll_start(&r->poll, UV_READABLE, on_pipe_readable) == 0;
      break;
    default: /* close */
      r->reading = 0;
      reader_close(r);
  }
  return NULL;
}

/* ----------------------------------------------------------------------------- small ones */

static napi_value Kill(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value args[2];
  int32_t pid, sig;
  CHECK(napi_get_cb_info(env, info, &argc, args, NULL, NULL));
  if (argc < 2 || napi_get_value_int32(env, args[0], &pid) != napi_ok || napi_get_value_int32(env, args[1], &sig) != napi_ok) {
    napi_throw_type_error(env, NULL, "kill(pid, signal)");
    return NULL;
  }
  return int_value(env, kill(pid, sig) == 0 ? 0 : -errno);
}

static napi_value Supported(napi_env env, napi_callback_info info) {
  (void)info;
  int fd = pidfd_open(getpid());
  napi_value out;
  napi_get_boolean(env, fd >= 0, &out);
  if (fd >= 0) close(fd);
  return out;
}

static napi_value Notify(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value args[2];
  void *path = NULL, *message = NULL;
  size_t path_len = 0, message_len = 0;
  CHECK(napi_get_cb_info(env, info, &argc, args, NULL, NULL));
  if (argc < 2 || napi_get_buffer_info(env, args[0], &path, &path_len) != napi_ok ||
      napi_get_buffer_info(env, args[1], &message, &message_len) != napi_ok) {
    napi_throw_type_error(env, NULL, "notify(socketPath: Buffer, message: Buffer)");
    return NULL;
  }
  struct sockaddr_un addr;
  memset(&addr, 0, sizeof addr);
  addr.sun_family = AF_UNIX;
  /* A path: NUL-terminated within sun_path. An abstract name: '\0' then the bytes, no NUL at
   * the end; its length is part of the name, so the address length must be exact. */
  const char *p = path;
  if (path_len < 2 || (p[0] != '/' && p[0] != '@') || memchr(p, '\0', path_len) != NULL) return int_value(env, -EINVAL);
  if (path_len >= sizeof addr.sun_path + (p[0] == '@')) return int_value(env, -ENAMETOOLONG);
  memcpy(addr.sun_path, p, path_len);
  socklen_t addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + path_len);
  if (p[0] == '@') addr.sun_path[0] = '\0';
  else addr_len += 1; /* the NUL */

  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return int_value(env, -errno);
  ssize_t sent;
  do {
    sent = sendto(fd, message, message_len, MSG_NOSIGNAL, (struct sockaddr *)&addr, addr_len);
  } while (sent < 0 && errno == EINTR);
  int result = sent < 0 ? -errno : (size_t)sent == message_len ? 0 : -EMSGSIZE;
  close(fd);
  return int_value(env, result);
}

/* The environment's teardown (see addon_state). */
static void env_cleanup(void *arg) {
  addon_state *state = arg;
  state->closing = 1;
  while (state->watches != NULL) {
    exit_watch *w = state->watches;
    uv_poll_stop(&w->poll);
    kill(-w->pid, SIGKILL);
    while (waitpid(w->pid, NULL, 0) == -1 && errno == EINTR) {
    }
    watch_close(w);
  }
  while (state->readers != NULL) reader_close(state->readers);
}

NAPI_MODULE_INIT() {
  addon_state *state = calloc(1, sizeof(*state));
  if (state == NULL || napi_set_instance_data(env, state, NULL, NULL) != napi_ok ||
      napi_add_env_cleanup_hook(env, env_cleanup, state) != napi_ok) {
    napi_throw_error(env, NULL, "gatewire spawn: cannot keep per-environment state");
    return NULL;
  }
  static const struct {
    const char *name;
    napi_callback fn;
    intptr_t data;
  } exported[] = {
      {"spawn", Spawn, 0},         {"readPipe", ReadPipe, 0},     {"pausePipe", PipeControl, 0},
      {"resumePipe", PipeControl, 1}, {"closePipe", PipeControl, 2}, {"kill", Kill, 0},
      {"supported", Supported, 0},    {"notify", Notify, 0},
  };
  for (size_t i = 0; i < sizeof exported / sizeof exported[0]; i++) {
    napi_value fn;
    CHECK(napi_create_function(env, exported[i].name, NAPI_AUTO_LENGTH, exported[i].fn, (void *)exported[i].data, &fn));
    CHECK(napi_set_named_property(env, exports, exported[i].name, fn));
  }
  return exports;
}
