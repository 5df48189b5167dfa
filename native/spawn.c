/*
 * gatewire's process spawner for CGI scripts (Linux, glibc): posix_spawn plus a pidfd exit watch.
 *
 * Why: Node 20's child_process.spawn() has libuv fork() the whole server, so every spawn copies
 * the page tables of a process of 60-400 MB (1.2 ms at 100 MB RSS, measured in
 * bench/cgi-spawn.mjs), on the event loop. glibc's posix_spawn() uses clone(CLONE_VM |
 * CLONE_VFORK): the child borrows the parent's memory until it execs, so the cost does not grow
 * with the server's size.
 *
 * JS API (loaded by src/apps/spawn.ts, which also holds the fallback to child_process):
 *
 *   spawn(file, argv, envp, cwd, stdin, onSpawn, onExit) -> undefined | -errno
 *     file    absolute path of the program (PATH look-up is the caller's)
 *     argv    string[] (argv[0] included), envp: string[] of "NAME=value" (UTF-8, no NUL)
 *     cwd     the child's working directory
 *     stdin   -1: a pipe (stdinFd is its write end); -2: /dev/null; n >= 0: that fd (duplicated
 *             before spawn() returns, so the caller may close it at once)
 *     onSpawn ([pid, stdinFd, stdoutFd, stderrFd] | -errno), called from the event loop once the
 *             child has exec'd (or failed to: ENOENT, EACCES, ENOEXEC...)
 *     onExit  (code: number | null, signal: number) called once the child exited and was reaped
 *   The spawn itself runs on a libuv worker thread: with CLONE_VFORK the calling thread waits
 *   until the child's execve is done (150-200 us for a shell script), and the event loop must
 *   not. The child gets its own session and process group (setsid), an empty signal mask,
 *   default dispositions for every signal (Node ignores SIGPIPE), no file descriptor beyond 0-2,
 *   and the server's umask. The returned fds are the parent's ends of the pipes, close-on-exec;
 *   -1 where none.
 *
 *   supported() -> boolean: pidfd_open works here (Linux 5.3+).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <node_api.h>
#include <uv.h>

#define CHECK(call)                                                   \
  do {                                                                \
    if ((call) != napi_ok) {                                          \
      napi_throw_error(env, NULL, "gatewire spawn: N-API call failed"); \
      return NULL;                                                    \
    }                                                                 \
  } while (0)

static int pidfd_open(pid_t pid) { return (int)syscall(SYS_pidfd_open, pid, 0); }

/* ----------------------------------------------------------------------------- exit watch */

typedef struct {
  uv_poll_t poll;
  napi_env env;
  napi_ref on_exit;
  napi_async_context async;
  pid_t pid;
  int pidfd;
} exit_watch;

static void watch_closed(uv_handle_t *handle) {
  exit_watch *w = (exit_watch *)handle->data;
  close(w->pidfd);
  free(w);
}

static void on_pidfd(uv_poll_t *poll, int status, int events) {
  (void)events;
  exit_watch *w = (exit_watch *)poll->data;
  int wstatus = 0;
  pid_t got;
  do got = waitpid(w->pid, &wstatus, WNOHANG);
  while (got == -1 && errno == EINTR);
  (void)status;
  if (got == 0) return; /* not yet (spurious wake-up) */

  uv_poll_stop(poll);
  napi_env env = w->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) == napi_ok) {
    napi_value cb, recv, argv[2];
    napi_get_reference_value(env, w->on_exit, &cb);
    napi_get_global(env, &recv); /* make_callback wants an object */
    if (got == w->pid && WIFEXITED(wstatus)) {
      napi_create_int32(env, WEXITSTATUS(wstatus), &argv[0]);
      napi_create_int32(env, 0, &argv[1]);
    } else if (got == w->pid && WIFSIGNALED(wstatus)) {
      napi_get_null(env, &argv[0]);
      napi_create_int32(env, WTERMSIG(wstatus), &argv[1]);
    } else {
      /* waitpid failed (ECHILD: someone else reaped it); report an unknown end */
      napi_get_null(env, &argv[0]);
      napi_create_int32(env, 0, &argv[1]);
    }
    /* make_callback, not call_function: runs nextTicks and microtasks afterwards, as any I/O
     * callback in Node does. An exception goes to process 'uncaughtException'. */
    if (napi_make_callback(env, w->async, recv, cb, 2, argv, NULL) == napi_pending_exception) {
      napi_value err;
      napi_get_and_clear_last_exception(env, &err);
      napi_fatal_exception(env, err);
    }
    napi_close_handle_scope(env, scope);
  }
  napi_delete_reference(env, w->on_exit);
  napi_async_destroy(env, w->async);
  uv_close((uv_handle_t *)poll, watch_closed);
}

/* ----------------------------------------------------------------------------- arguments */

static void free_strings(char **list) {
  if (list == NULL) return;
  for (char **p = list; *p != NULL; p++) free(*p);
  free(list);
}

static char *get_string(napi_env env, napi_value value) {
  size_t len = 0;
  if (napi_get_value_string_utf8(env, value, NULL, 0, &len) != napi_ok) return NULL;
  char *s = malloc(len + 1);
  if (s == NULL) return NULL;
  if (napi_get_value_string_utf8(env, value, s, len + 1, &len) != napi_ok || strlen(s) != len) {
    free(s); /* not a string, or a NUL inside: execve would cut it short */
    return NULL;
  }
  return s;
}

/* A NULL-terminated char*[] from a JS string[]; NULL when anything is not a clean string. */
static char **get_strings(napi_env env, napi_value array) {
  uint32_t n = 0;
  if (napi_get_array_length(env, array, &n) != napi_ok) return NULL;
  char **list = calloc((size_t)n + 1, sizeof(char *));
  if (list == NULL) return NULL;
  for (uint32_t i = 0; i < n; i++) {
    napi_value item;
    if (napi_get_element(env, array, i, &item) != napi_ok || (list[i] = get_string(env, item)) == NULL) {
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

/* One spawn request: filled on the main thread, spawned on a libuv worker thread (the vfork
 * parent waits for the child's execve, 150-200 us for a shell script, and that wait must not
 * stop the event loop), answered on the main thread. */
typedef struct {
  napi_async_work work;
  napi_ref on_spawn;
  napi_ref on_exit;
  char *file;
  char *cwd;
  char **argv;
  char **envp;
  int stdin_mode; /* -1 pipe, -2 /dev/null, else an fd of ours (a dup, closed afterwards) */
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

/* Worker thread: no N-API here. */
static void spawn_execute(napi_env env, void *data) {
  (void)env;
  spawn_job *job = data;
  int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1};
  int child_in = -1;
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  int have_actions = 0, have_attr = 0;
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

  if ((errno = posix_spawn_file_actions_init(&actions)) != 0) goto fail;
  have_actions = 1;
  if ((errno = posix_spawn_file_actions_adddup2(&actions, child_in, 0)) != 0 ||
      (errno = posix_spawn_file_actions_adddup2(&actions, out[1], 1)) != 0 ||
      (errno = posix_spawn_file_actions_adddup2(&actions, err[1], 2)) != 0 ||
      (errno = posix_spawn_file_actions_addclosefrom_np(&actions, 3)) != 0 ||
      (errno = posix_spawn_file_actions_addchdir_np(&actions, job->cwd)) != 0)
    goto fail;

  if ((errno = posix_spawnattr_init(&attr)) != 0) goto fail;
  have_attr = 1;
  sigset_t none, all;
  sigemptyset(&none);
  sigemptyset(&all);
  for (int sig = 1; sig < NSIG; sig++)
    if (sig != SIGKILL && sig != SIGSTOP) sigaddset(&all, sig); /* glibc-internal ones are refused: fine */
  if ((errno = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK |
                                                   POSIX_SPAWN_SETSIGDEF)) != 0 ||
      (errno = posix_spawnattr_setsigmask(&attr, &none)) != 0 ||
      (errno = posix_spawnattr_setsigdefault(&attr, &all)) != 0)
    goto fail;

  /* libuv's worker threads block every signal, and glibc 2.36 gives the child the calling
   * thread's mask whenever SETSID or SETSIGDEF is set along with SETSIGMASK (measured: SigBlk
   * all ones in the script). So the thread unblocks around the call; a signal landing here in
   * that window runs Node's handler, which only writes to libuv's signal pipe. */
  sigset_t thread_mask;
  pthread_sigmask(SIG_SETMASK, &none, &thread_mask);
  /* exec errors (ENOENT, EACCES, ENOEXEC...) come back here: glibc's child reports them before
   * the parent resumes. */
  pid_t pid;
  errno = posix_spawn(&pid, job->file, &actions, &attr, job->argv, job->envp);
  pthread_sigmask(SIG_SETMASK, &thread_mask, NULL);
  if (errno != 0) goto fail;

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
  if (have_actions) posix_spawn_file_actions_destroy(&actions);
  if (have_attr) posix_spawnattr_destroy(&attr);
  close_fd(&child_in);
  close_fd(&in[0]);
  close_fd(&in[1]);
  close_fd(&out[0]);
  close_fd(&out[1]);
  close_fd(&err[0]);
  close_fd(&err[1]);
}

static napi_value return_int(napi_env env, int value) {
  napi_value out;
  napi_create_int32(env, value, &out);
  return out;
}

/* Main thread: start the exit watch, then tell JS. */
static void spawn_complete(napi_env env, napi_status status, void *data) {
  spawn_job *job = data;
  napi_value result;
  if (status != napi_ok && job->error == 0) job->error = ECANCELED;

  exit_watch *w = NULL;
  uv_loop_t *loop = NULL;
  if (job->error == 0) {
    w = calloc(1, sizeof(*w));
    if (w == NULL || napi_get_uv_event_loop(env, &loop) != napi_ok || uv_poll_init(loop, &w->poll, job->pidfd) != 0) {
      free(w);
      w = NULL;
      kill(-job->pid, SIGKILL);
      while (waitpid(job->pid, NULL, 0) == -1 && errno == EINTR) {
      }
      close(job->pidfd);
      for (int i = 0; i < 3; i++) close_fd(&job->parent_fds[i]);
      job->error = ENOMEM;
    }
  }
  if (job->error != 0) {
    result = return_int(env, -job->error);
  } else {
    napi_value resource_name;
    w->env = env;
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
    for (uint32_t i = 0; i < 4; i++) napi_set_element(env, result, i, return_int(env, values[i]));
  }

  napi_value cb, recv;
  napi_get_reference_value(env, job->on_spawn, &cb);
  napi_get_global(env, &recv);
  free_job(env, job);
  /* complete callbacks run inside a callback scope: an exception thrown here is reported as
   * uncaught by Node itself. */
  napi_call_function(env, recv, cb, 1, &result, NULL);
}

/* spawn(file, argv, envp, cwd, stdin, onSpawn, onExit) */
static napi_value Spawn(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value args[7];
  CHECK(napi_get_cb_info(env, info, &argc, args, NULL, NULL));
  napi_valuetype t5, t6;
  int32_t stdin_mode = 0;
  if (argc < 7 || napi_get_value_int32(env, args[4], &stdin_mode) != napi_ok ||
      napi_typeof(env, args[5], &t5) != napi_ok || napi_typeof(env, args[6], &t6) != napi_ok ||
      t5 != napi_function || t6 != napi_function) {
    napi_throw_type_error(env, NULL, "spawn(file, argv, envp, cwd, stdin, onSpawn, onExit)");
    return NULL;
  }
  spawn_job *job = calloc(1, sizeof(*job));
  if (job == NULL) {
    napi_throw_error(env, "ENOMEM", "spawn: out of memory");
    return NULL;
  }
  job->stdin_mode = -2;
  job->file = get_string(env, args[0]);
  job->cwd = get_string(env, args[3]);
  job->argv = get_strings(env, args[1]);
  job->envp = get_strings(env, args[2]);
  if (job->file == NULL || job->cwd == NULL || job->argv == NULL || job->envp == NULL) {
    free_job(env, job);
    napi_throw_type_error(env, "ERR_INVALID_ARG_VALUE", "spawn: file, cwd, argv and envp must be strings without NUL bytes");
    return NULL;
  }
  /* A given stdin fd is duplicated now: the caller may close its own as soon as we return. */
  if (stdin_mode >= 0 && (stdin_mode = fcntl(stdin_mode, F_DUPFD_CLOEXEC, 3)) < 0) {
    int e = errno;
    free_job(env, job);
    return return_int(env, -e);
  }
  job->stdin_mode = stdin_mode < -2 ? -2 : stdin_mode;
  napi_value resource_name;
  if (napi_create_reference(env, args[5], 1, &job->on_spawn) != napi_ok ||
      napi_create_reference(env, args[6], 1, &job->on_exit) != napi_ok ||
      napi_create_string_utf8(env, "gatewire:cgi-spawn", NAPI_AUTO_LENGTH, &resource_name) != napi_ok ||
      napi_create_async_work(env, NULL, resource_name, spawn_execute, spawn_complete, job, &job->work) != napi_ok ||
      napi_queue_async_work(env, job->work) != napi_ok) {
    free_job(env, job);
    napi_throw_error(env, NULL, "spawn: could not queue the spawn");
    return NULL;
  }
  napi_value undefined;
  napi_get_undefined(env, &undefined);
  return undefined;
}

static napi_value Supported(napi_env env, napi_callback_info info) {
  (void)info;
  int fd = pidfd_open(getpid());
  napi_value out;
  napi_get_boolean(env, fd >= 0, &out);
  if (fd >= 0) close(fd);
  return out;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  CHECK(napi_create_function(env, "spawn", NAPI_AUTO_LENGTH, Spawn, NULL, &fn));
  CHECK(napi_set_named_property(env, exports, "spawn", fn));
  CHECK(napi_create_function(env, "supported", NAPI_AUTO_LENGTH, Supported, NULL, &fn));
  CHECK(napi_set_named_property(env, exports, "supported", fn));
  return exports;
}
