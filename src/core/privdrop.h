/* privdrop.h -- giving up root once the listeners are bound (--user,
 * --chroot): chroot, no supplementary groups, the user's gid and uid, no
 * capability in any set, PR_SET_NO_NEW_PRIVS; then checked, down to every
 * thread's /proc status. core/daemon.c calls it before any worker thread
 * exists, so every thread starts with what is left. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct privdrop {
	char user[64]; /* the name, for messages */
	uid_t uid;     /* its uid */
	gid_t gid;     /* and primary gid (no supplementary groups are kept) */
	int task_fd;   /* /proc/self/task, opened by privdrop_apply before a chroot; -1 */
};

/** Look the user up (getpwnam_r, so NSS and systemd's dynamic users work):
 * 0, or -ENOENT with "user 'NAME': no such user" in err (or the lookup's
 * own error). Cheap: --check-config calls it too. */
int privdrop_lookup(const char *name, struct privdrop *p, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/** Become p: chroot(chroot_dir) and chdir("/") when chroot_dir is not NULL;
 * the capability bounding set emptied (as far as CAP_SETPCAP allows);
 * setgroups(0), setresgid, setresuid; the inheritable and ambient sets
 * cleared; PR_SET_NO_NEW_PRIVS. Then checked: setuid(0) and setgid(0) must
 * fail and the capability sets read back empty. Already running as p's uid
 * without root, only what needs no privilege is done. Call with one thread
 * (capabilities are per thread). 0, or a negative errno with what failed in
 * err. Opens p->task_fd for privdrop_verify_threads. */
int privdrop_apply(struct privdrop *p, const char *chroot_dir, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/** Without --user and not root (systemd's User= or DynamicUser= with
 * AmbientCapabilities=CAP_NET_BIND_SERVICE, say): give up whatever
 * capability is left once the listeners are bound -- effective,
 * permitted, inheritable, ambient -- and set no_new_privs. True when there
 * was one to give up. One thread, as privdrop_apply. */
bool privdrop_shed_caps(void);

/** Every thread of this process (/proc/self/task/N/status): uid and gid
 * p's in all four fields, no supplementary group, CapEff, CapPrm, CapInh and
 * CapAmb zero. 0, or -EPERM naming the first thread and line that is not.
 * Reads through p->task_fd (so it works in a chroot) and closes it: once. */
int privdrop_verify_threads(struct privdrop *p, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/** Can p read path now (after the drop, inside the chroot)? For the files a
 * SIGHUP reads again: the configuration, the certificate and key. */
bool privdrop_can_read(const char *path, char *why, size_t whylen);
