// Kernel constants used with the native calls. Pure (no addon load), so wire parsers in
// src/kernel can import them; test/native checks each one against the C headers the addon
// was built with. Values newer than Debian bookworm's headers come from the 6.14+ uapi.

// mount(2) flags, <linux/mount.h>
export const MS_RDONLY = 0x1;
export const MS_NOSUID = 0x2;
export const MS_NODEV = 0x4;
export const MS_NOEXEC = 0x8;
export const MS_SYNCHRONOUS = 0x10;
export const MS_REMOUNT = 0x20;
export const MS_MANDLOCK = 0x40;
export const MS_DIRSYNC = 0x80;
export const MS_NOSYMFOLLOW = 0x100;
export const MS_NOATIME = 0x400;
export const MS_NODIRATIME = 0x800;
export const MS_BIND = 0x1000;
export const MS_MOVE = 0x2000;
export const MS_REC = 0x4000;
export const MS_SILENT = 0x8000;
export const MS_POSIXACL = 0x10000;
export const MS_UNBINDABLE = 0x20000;
export const MS_PRIVATE = 0x40000;
export const MS_SLAVE = 0x80000;
export const MS_SHARED = 0x100000;
export const MS_RELATIME = 0x200000;
export const MS_I_VERSION = 0x800000;
export const MS_STRICTATIME = 0x1000000;
export const MS_LAZYTIME = 0x2000000;

// umount2(2) flags
export const MNT_FORCE = 0x1;
export const MNT_DETACH = 0x2;
export const MNT_EXPIRE = 0x4;
export const UMOUNT_NOFOLLOW = 0x8;

/** dirfd meaning "relative to the working directory" (fanotifyMark). */
export const AT_FDCWD = -100;

// fanotify_init(2) flags
export const FAN_CLOEXEC = 0x1;
export const FAN_NONBLOCK = 0x2;
export const FAN_CLASS_NOTIF = 0x0;
export const FAN_CLASS_CONTENT = 0x4;
export const FAN_CLASS_PRE_CONTENT = 0x8;
export const FAN_UNLIMITED_QUEUE = 0x10;
export const FAN_UNLIMITED_MARKS = 0x20;
export const FAN_ENABLE_AUDIT = 0x40;
export const FAN_REPORT_TID = 0x100;
export const FAN_REPORT_FID = 0x200;
export const FAN_REPORT_DIR_FID = 0x400;
export const FAN_REPORT_NAME = 0x800;
export const FAN_REPORT_FD_ERROR = 0x2000;

// fanotify_mark(2) flags
export const FAN_MARK_ADD = 0x1;
export const FAN_MARK_REMOVE = 0x2;
export const FAN_MARK_DONT_FOLLOW = 0x4;
export const FAN_MARK_ONLYDIR = 0x8;
export const FAN_MARK_MOUNT = 0x10;
export const FAN_MARK_IGNORED_MASK = 0x20;
export const FAN_MARK_IGNORED_SURV_MODIFY = 0x40;
export const FAN_MARK_FLUSH = 0x80;
export const FAN_MARK_FILESYSTEM = 0x100;
export const FAN_MARK_EVICTABLE = 0x200;
export const FAN_MARK_IGNORE = 0x400;
export const FAN_MARK_INODE = 0x0;

// fanotify event mask bits (fanotifyMark takes the mask as a bigint: it is 64 bits wide)
export const FAN_ACCESS = 0x1n;
export const FAN_MODIFY = 0x2n;
export const FAN_CLOSE_WRITE = 0x8n;
export const FAN_CLOSE_NOWRITE = 0x10n;
export const FAN_OPEN = 0x20n;
export const FAN_Q_OVERFLOW = 0x4000n;
export const FAN_OPEN_PERM = 0x10000n;
export const FAN_ACCESS_PERM = 0x20000n;
export const FAN_OPEN_EXEC_PERM = 0x40000n;
export const FAN_PRE_ACCESS = 0x100000n;
export const FAN_EVENT_ON_CHILD = 0x8000000n;
export const FAN_ONDIR = 0x40000000n;

// fanotify events and responses
export const FANOTIFY_METADATA_VERSION = 3;
export const FAN_EVENT_METADATA_LEN = 24;
export const FAN_RESPONSE_LEN = 8;
export const FAN_NOFD = -1;
export const FAN_ALLOW = 0x1;
export const FAN_DENY = 0x2;
export const FAN_EVENT_INFO_TYPE_RANGE = 6;

/**
 * FAN_DENY with an errno for the reader (Linux 6.14+). The kernel accepts only a few
 * errnos here (EIO among them); any other makes the response write fail with EINVAL.
 */
export function FAN_DENY_ERRNO(errno: number): number {
  return (FAN_DENY | ((errno & 0xff) << 24)) >>> 0;
}

// inotify, <sys/inotify.h>: IN_UNMOUNT and IN_IGNORED come whatever the mask asks for.
export const IN_DELETE_SELF = 0x400;
export const IN_UNMOUNT = 0x2000;
export const IN_Q_OVERFLOW = 0x4000;
export const IN_IGNORED = 0x8000;
export const IN_ONLYDIR = 0x1000000;
/** struct inotify_event without its name: wd, mask, cookie, len. */
export const INOTIFY_EVENT_LEN = 16;

/** _IOW(0x98, 1, int) from <linux/cachefiles.h>; the msg_id goes by value. */
export const CACHEFILES_IOC_READ_COMPLETE = 0x40049801;

// openat2(2) resolve flags, <linux/openat2.h>
export const RESOLVE_NO_XDEV = 0x01;
export const RESOLVE_NO_MAGICLINKS = 0x02;
export const RESOLVE_NO_SYMLINKS = 0x04;
export const RESOLVE_BENEATH = 0x08;
export const RESOLVE_IN_ROOT = 0x10;
