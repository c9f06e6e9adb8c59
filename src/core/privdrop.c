/* privdrop.c -- see privdrop.h. The order matters: chroot and the bounding
 * set need root, so they come first; groups before the gid, the gid before
 * the uid (after setuid nothing else may change). The kernel empties the
 * permitted, effective and ambient sets when the last uid 0 goes
 * (capabilities(7), "Effect of user ID changes on capabilities"), but not
 * the inheritable set: capset clears that. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "core/privdrop.h"

int privdrop_lookup(const char *name, struct privdrop *p, char *err, size_t errlen)
{
	struct passwd pw, *found = NULL;
	char buf[4096];
	if (strlen(name) >= sizeof(p->user)) {
		snprintf(err, errlen, "user '%s': no such user (the name is too long)", name);
		return -ENOENT;
	}
	int r = getpwnam_r(name, &pw, buf, sizeof(buf), &found);
	if (!found) {
		if (r == 0 || r == ENOENT || r == ESRCH)
			snprintf(err, errlen, "user '%s': no such user", name);
		else
			snprintf(err, errlen, "user '%s': cannot look it up: %s", name, strerror(r));
		return -ENOENT;
	}
	snprintf(p->user, sizeof(p->user), "%s", name);
	p->uid = pw.pw_uid;
	p->task_fd = -1;
	p->gid = pw.pw_gid;
	return 0;
}

static int caps_clear(void)
{
	struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
	struct __user_cap_data_struct d[_LINUX_CAPABILITY_U32S_3];
	memset(d, 0, sizeof(d));
	if (syscall(SYS_capset, &h, d) < 0)
		return -errno;
	(void)prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); /* (EINVAL before Linux 4.3: none to clear) */
	return 0;
}

static bool caps_empty(void)
{
	struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
	struct __user_cap_data_struct d[_LINUX_CAPABILITY_U32S_3];
	if (syscall(SYS_capget, &h, d) < 0)
		return false;
	for (int i = 0; i < _LINUX_CAPABILITY_U32S_3; i++)
		if (d[i].effective || d[i].permitted || d[i].inheritable)
			return false;
	return true;
}

/* The bounding set limits what an execve could ever gain; NO_NEW_PRIVS
 * already stops that, so an EPERM here (no CAP_SETPCAP) is no failure. */
static void drop_bounding_set(void)
{
	for (int cap = 0; prctl(PR_CAPBSET_READ, cap, 0, 0, 0) >= 0; cap++)
		(void)prctl(PR_CAPBSET_DROP, cap, 0, 0, 0);
}

static int fail(char *err, size_t errlen, const char *what, const struct privdrop *p)
{
	int e = errno;
	snprintf(err, errlen, "%s (user '%s', uid %u, gid %u): %s", what, p->user, (unsigned)p->uid, (unsigned)p->gid,
		 strerror(e));
	return -e;
}

/* Switch uid and gid. Not root but already p: nothing to switch, and
 * setgroups would fail (it needs CAP_SETGID) -- keep what systemd set. */
static int switch_ids(const struct privdrop *p, char *err, size_t errlen)
{
	if (geteuid() != 0 && getuid() == p->uid && geteuid() == p->uid && getgid() == p->gid && getegid() == p->gid)
		return 0;
	if (setgroups(0, NULL) < 0)
		return fail(err, errlen, "cannot clear the supplementary groups", p);
	if (setresgid(p->gid, p->gid, p->gid) < 0)
		return fail(err, errlen, "cannot set the group", p);
	if (setresuid(p->uid, p->uid, p->uid) < 0)
		return fail(err, errlen, "cannot set the user", p);
	return 0;
}

/* Every id is p's and root cannot be had back. */
static int check_ids(const struct privdrop *p, char *err, size_t errlen)
{
	uid_t ru, eu, su;
	gid_t rg, eg, sg;
	if (getresuid(&ru, &eu, &su) < 0 || getresgid(&rg, &eg, &sg) < 0)
		return fail(err, errlen, "cannot read the ids back", p);
	if (ru != p->uid || eu != p->uid || su != p->uid || rg != p->gid || eg != p->gid || sg != p->gid) {
		snprintf(err, errlen, "ids after the drop are uid %u/%u/%u gid %u/%u/%u, not user '%s' (%u, %u)",
			 (unsigned)ru, (unsigned)eu, (unsigned)su, (unsigned)rg, (unsigned)eg, (unsigned)sg, p->user,
			 (unsigned)p->uid, (unsigned)p->gid);
		return -EPERM;
	}
	if ((p->uid != 0 && setuid(0) == 0) || (p->gid != 0 && setgid(0) == 0)) {
		snprintf(err, errlen, "user '%s' could become root again after the drop", p->user);
		return -EPERM;
	}
	return 0;
}

static int apply(const struct privdrop *p, const char *chroot_dir, char *err, size_t errlen)
{
	int r;
	if (chroot_dir && (chroot(chroot_dir) < 0 || chdir("/") < 0)) {
		r = -errno;
		snprintf(err, errlen, "chroot %s: %s", chroot_dir, strerror(-r));
		return r;
	}
	drop_bounding_set();
	if ((r = switch_ids(p, err, errlen)) < 0 || (r = check_ids(p, err, errlen)) < 0)
		return r;
	if (caps_clear() < 0 || !caps_empty()) {
		errno = errno ? errno : EPERM;
		return fail(err, errlen, "capabilities left after the drop", p);
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return fail(err, errlen, "cannot set no_new_privs", p);
	return 0;
}

int privdrop_apply(struct privdrop *p, const char *chroot_dir, char *err, size_t errlen)
{
	/* for privdrop_verify_threads: a chroot has no /proc, as a rule */
	p->task_fd = open("/proc/self/task", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int r = apply(p, chroot_dir, err, errlen);
	if (r < 0 && p->task_fd >= 0) {
		close(p->task_fd);
		p->task_fd = -1;
	}
	return r;
}

bool privdrop_shed_caps(void)
{
	if (geteuid() == 0 || caps_empty())
		return false;
	return caps_clear() == 0 && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0;
}

/* One line of a status file, "Name:\tvalue", checked. */
static bool line_ok(const char *line, const struct privdrop *p, char *bad, size_t badlen)
{
	unsigned a, b, c, d;
	unsigned long long cap;
	if (sscanf(line, "Uid: %u %u %u %u", &a, &b, &c, &d) == 4 || sscanf(line, "Gid: %u %u %u %u", &a, &b, &c, &d) == 4) {
		unsigned want = line[0] == 'U' ? (unsigned)p->uid : (unsigned)p->gid;
		if (a == want && b == want && c == want && d == want)
			return true;
	} else if (strncmp(line, "Groups:", 7) == 0) {
		if (strspn(line + 7, " \t\n") == strlen(line + 7))
			return true;
	} else if ((strncmp(line, "CapEff:", 7) == 0 || strncmp(line, "CapPrm:", 7) == 0 ||
		    strncmp(line, "CapInh:", 7) == 0 || strncmp(line, "CapAmb:", 7) == 0)) {
		if (sscanf(line + 7, "%llx", &cap) == 1 && cap == 0)
			return true;
	} else {
		return true;
	}
	snprintf(bad, badlen, "%.*s", (int)strcspn(line, "\n"), line);
	return false;
}

static int check_task(int task_fd, const char *tid, const struct privdrop *p, char *err, size_t errlen)
{
	char path[64], line[512], bad[256];
	snprintf(path, sizeof(path), "%s/status", tid);
	int fd = openat(task_fd, path, O_RDONLY | O_CLOEXEC);
	FILE *f = fd < 0 ? NULL : fdopen(fd, "r");
	if (!f) {
		if (fd >= 0)
			close(fd);
		return 0; /* the thread has ended */
	}
	int r = 0;
	while (r == 0 && fgets(line, sizeof(line), f))
		if (!line_ok(line, p, bad, sizeof(bad))) {
			snprintf(err, errlen, "thread %s after dropping to user '%s': %s", tid, p->user, bad);
			r = -EPERM;
		}
	fclose(f);
	return r;
}

int privdrop_verify_threads(struct privdrop *p, char *err, size_t errlen)
{
	int fd = p->task_fd;
	p->task_fd = -1;
	DIR *dir = fd < 0 ? NULL : fdopendir(fd);
	if (!dir) {
		snprintf(err, errlen, "cannot check the threads' credentials: /proc/self/task: %s", strerror(errno));
		if (fd >= 0)
			close(fd);
		return -EPERM;
	}
	int r = 0;
	for (struct dirent *e; r == 0 && (e = readdir(dir));)
		if (e->d_name[0] != '.')
			r = check_task(dirfd(dir), e->d_name, p, err, errlen);
	closedir(dir);
	return r;
}

bool privdrop_can_read(const char *path, char *why, size_t whylen)
{
	if (access(path, R_OK) == 0)
		return true;
	snprintf(why, whylen, "%s", strerror(errno));
	return false;
}
