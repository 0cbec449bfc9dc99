//! The guest's filesystem: `/in` and `/out` as one in-memory tree that the sandbox owns, and the
//! guest's table of open descriptors.
//!
//! Nothing here touches the host filesystem, so nothing the guest can observe depends on it:
//! every node carries fixed timestamps (until the guest sets them), an inode number given in
//! creation order, a device number per mount, a size of 0 for directories and a link count of 1;
//! listings come in byte order of names; every refusal is one [`Errno`] chosen here, the same on
//! every host. `/out` has an exact byte quota (the sum of its files' lengths, sparse or not) and
//! an entry quota, both checked before an operation changes anything: the operation that would
//! cross one fails with [`FsError::TooLarge`], which ends the run as `output_too_large`.
//!
//! What this module must never do: follow anything outside its own tree, hold more than a
//! bounded constant beyond the quota of file bytes in `/out` (see [`Vfs::held_bytes`]), or let
//! the order of a `HashMap` or an allocation decide anything the guest sees.

use crate::spec::{OutputFile, OutputStream};
use std::collections::BTreeMap;

/// A WASI preview 1 `errno`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Errno(pub u16);

impl Errno {
    pub const BADF: Errno = Errno(8);
    pub const EXIST: Errno = Errno(20);
    pub const FAULT: Errno = Errno(21);
    pub const ILSEQ: Errno = Errno(25);
    pub const INVAL: Errno = Errno(28);
    pub const ISDIR: Errno = Errno(31);
    pub const MFILE: Errno = Errno(33);
    pub const NAMETOOLONG: Errno = Errno(37);
    pub const NOENT: Errno = Errno(44);
    pub const NOTDIR: Errno = Errno(54);
    pub const NOTEMPTY: Errno = Errno(55);
    pub const NOTSOCK: Errno = Errno(57);
    pub const NOTSUP: Errno = Errno(58);
    pub const OVERFLOW: Errno = Errno(61);
    pub const PERM: Errno = Errno(63);
    pub const ROFS: Errno = Errno(69);
    pub const SPIPE: Errno = Errno(70);
    pub const XDEV: Errno = Errno(75);
    pub const NOTCAPABLE: Errno = Errno(76);
}

/// Why a filesystem operation did not happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FsError {
    /// Refused; the guest gets this errno and goes on.
    Errno(Errno),
    /// The operation would cross a quota of `/out`, stdout or stderr: the run ends.
    TooLarge(OutputStream),
}

impl From<Errno> for FsError {
    fn from(e: Errno) -> Self {
        FsError::Errno(e)
    }
}

type FsResult<T> = Result<T, FsError>;

/// WASI preview 1 file types, as `fd_filestat_get` and `fd_readdir` report them.
pub const FILETYPE_CHARACTER_DEVICE: u8 = 2;
pub const FILETYPE_DIRECTORY: u8 = 3;
pub const FILETYPE_REGULAR_FILE: u8 = 4;

/// Rights bits the sandbox looks at.
pub const RIGHT_FD_READ: u64 = 1 << 1;
pub const RIGHT_FD_WRITE: u64 = 1 << 6;
/// Every right preview 1 defines (bits 0..=29).
pub const RIGHTS_ALL: u64 = (1 << 30) - 1;

/// `fdflags`.
pub const FDFLAG_APPEND: u16 = 1;
const FDFLAGS_ALL: u16 = 0x1f;

/// `oflags`.
pub const OFLAG_CREAT: u16 = 1;
pub const OFLAG_DIRECTORY: u16 = 2;
pub const OFLAG_EXCL: u16 = 4;
pub const OFLAG_TRUNC: u16 = 8;

/// `fstflags`.
const FST_ATIM: u16 = 1;
const FST_ATIM_NOW: u16 = 2;
const FST_MTIM: u16 = 4;
const FST_MTIM_NOW: u16 = 8;

/// Bounds besides the quotas.
pub const MAX_OPEN_FDS: usize = 1024;
pub const MAX_NAME_BYTES: usize = 255;
pub const MAX_PATH_BYTES: usize = 4096;
/// How deep directories may nest in `/out`.
pub const MAX_OUT_DEPTH: usize = 32;
/// File capacity the tree may hold beyond the byte quota, so that files grown by many small
/// writes get amortised growth; past it, growth is exact.
pub const GROWTH_SLACK_BYTES: u64 = 1 << 20;

/// Every timestamp a guest sees unless it set one itself: 2000-01-01T00:00:00Z.
pub const FIXED_TIME_NS: u64 = crate::outputs::FIXED_EPOCH_SECS * 1_000_000_000;

/// The descriptors of the preopened directories.
pub const FD_IN: u32 = 3;
pub const FD_OUT: u32 = 4;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mount {
    In,
    Out,
}

impl Mount {
    fn dev(self) -> u64 {
        match self {
            Mount::In => 1,
            Mount::Out => 2,
        }
    }
}

type NodeId = usize;
const IN_ROOT: NodeId = 0;
const OUT_ROOT: NodeId = 1;

enum Kind {
    File(Vec<u8>),
    /// Children by name; `String` orders by bytes.
    Dir(BTreeMap<String, NodeId>),
}

struct Node {
    kind: Kind,
    mount: Mount,
    parent: NodeId,
    depth: usize,
    /// Whether a directory entry names this node (there are no hard links).
    linked: bool,
    /// Open descriptors on this node: an unlinked file lives (and counts) until the last closes.
    open: u32,
    atim_ns: u64,
    mtim_ns: u64,
}

/// What `fd_filestat_get` and `path_filestat_get` report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Filestat {
    pub dev: u64,
    pub ino: u64,
    pub filetype: u8,
    pub nlink: u64,
    pub size: u64,
    pub atim_ns: u64,
    pub mtim_ns: u64,
    pub ctim_ns: u64,
}

/// What `fd_fdstat_get` reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fdstat {
    pub filetype: u8,
    pub flags: u16,
    pub rights_base: u64,
    pub rights_inheriting: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stdio {
    In,
    Out,
    Err,
}

#[derive(Clone, Copy)]
enum Desc {
    Stdio(Stdio),
    Node {
        node: NodeId,
        /// The name `fd_prestat_dir_name` gives a preopened directory.
        preopen: Option<&'static str>,
        pos: u64,
        flags: u16,
        rights: u64,
        inheriting: u64,
    },
}

/// What a path names once walked: an existing directory reached through `.` or `..` (or an
/// empty last component), or a name in a directory, which may or may not exist.
enum Resolved {
    Node(NodeId),
    Entry { dir: NodeId, name: String },
}

/// The guest's filesystem and descriptor table.
pub struct Vfs {
    nodes: Vec<Option<Node>>,
    /// Freed node slots, reused last-freed first (so inode numbers are reused as on disk).
    free: Vec<NodeId>,
    fds: BTreeMap<u32, Desc>,
    out_bytes: u64,
    out_entries: u64,
    max_out_bytes: u64,
    max_out_entries: u64,
    /// Capacity of every file buffer in `/out`: what the host really holds.
    out_capacity: u64,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    max_stdio_bytes: u64,
}

impl std::fmt::Debug for Vfs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vfs")
            .field("out_bytes", &self.out_bytes)
            .field("out_entries", &self.out_entries)
            .finish_non_exhaustive()
    }
}

fn new_node(kind: Kind, mount: Mount, parent: NodeId, depth: usize) -> Node {
    Node {
        kind,
        mount,
        parent,
        depth,
        linked: true,
        open: 0,
        atim_ns: FIXED_TIME_NS,
        mtim_ns: FIXED_TIME_NS,
    }
}

impl Vfs {
    /// A tree with `/in` holding `inputs` (flat names, checked by the caller) and an empty
    /// `/out`; descriptors 0-2 are stdio, 3 is `/in` and 4 is `/out`.
    pub fn new(
        inputs: Vec<(String, Vec<u8>)>,
        max_out_bytes: u64,
        max_out_entries: u64,
        max_stdio_bytes: u64,
    ) -> Vfs {
        let mut v = Vfs {
            nodes: Vec::new(),
            free: Vec::new(),
            fds: BTreeMap::new(),
            out_bytes: 0,
            out_entries: 0,
            max_out_bytes,
            max_out_entries,
            out_capacity: 0,
            stdout: Vec::new(),
            stderr: Vec::new(),
            max_stdio_bytes,
        };
        v.nodes.push(Some(new_node(
            Kind::Dir(BTreeMap::new()),
            Mount::In,
            IN_ROOT,
            0,
        )));
        v.nodes.push(Some(new_node(
            Kind::Dir(BTreeMap::new()),
            Mount::Out,
            OUT_ROOT,
            0,
        )));
        // Inodes are handed out in creation order, so inputs get theirs in name order.
        let mut inputs = inputs;
        inputs.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, bytes) in inputs {
            let id = v.alloc(new_node(Kind::File(bytes), Mount::In, IN_ROOT, 1));
            if let Some(Kind::Dir(children)) = v.kind_mut(IN_ROOT) {
                children.insert(name, id);
            }
        }
        v.fds.insert(0, Desc::Stdio(Stdio::In));
        v.fds.insert(1, Desc::Stdio(Stdio::Out));
        v.fds.insert(2, Desc::Stdio(Stdio::Err));
        for (fd, node, name) in [(FD_IN, IN_ROOT, "/in"), (FD_OUT, OUT_ROOT, "/out")] {
            v.fds.insert(
                fd,
                Desc::Node {
                    node,
                    preopen: Some(name),
                    pos: 0,
                    flags: 0,
                    rights: RIGHTS_ALL,
                    inheriting: RIGHTS_ALL,
                },
            );
            v.node_mut(node).open += 1;
        }
        v
    }

    pub fn stdout(&self) -> &[u8] {
        &self.stdout
    }

    pub fn stderr(&self) -> &[u8] {
        &self.stderr
    }

    /// Bytes of file content in `/out`, as the quota counts them.
    pub fn out_bytes(&self) -> u64 {
        self.out_bytes
    }

    /// What the host holds for `/out` files (their buffers' capacity). Bounded by the byte quota
    /// plus [`GROWTH_SLACK_BYTES`].
    pub fn held_bytes(&self) -> u64 {
        self.out_capacity
    }

    // ----- nodes -----

    fn alloc(&mut self, node: Node) -> NodeId {
        match self.free.pop() {
            Some(id) => {
                self.nodes[id] = Some(node);
                id
            }
            None => {
                self.nodes.push(Some(node));
                self.nodes.len() - 1
            }
        }
    }

    fn node(&self, id: NodeId) -> &Node {
        match self.nodes.get(id) {
            Some(Some(n)) => n,
            // Ids come only from the tree and the descriptor table, which keep nodes alive.
            _ => panic!("vfs: dangling node {id}"),
        }
    }

    fn node_mut(&mut self, id: NodeId) -> &mut Node {
        match self.nodes.get_mut(id) {
            Some(Some(n)) => n,
            _ => panic!("vfs: dangling node {id}"),
        }
    }

    fn kind_mut(&mut self, id: NodeId) -> Option<&mut Kind> {
        self.nodes
            .get_mut(id)
            .and_then(|n| n.as_mut())
            .map(|n| &mut n.kind)
    }

    fn children(&self, id: NodeId) -> Option<&BTreeMap<String, NodeId>> {
        match &self.node(id).kind {
            Kind::Dir(c) => Some(c),
            Kind::File(_) => None,
        }
    }

    /// Frees a node nobody names or holds open, and gives its bytes back to the quota.
    fn release_if_unused(&mut self, id: NodeId) {
        let n = self.node(id);
        if n.linked || n.open > 0 {
            return;
        }
        if n.mount == Mount::Out {
            let (len, cap) = match &n.kind {
                Kind::File(data) => (data.len() as u64, data.capacity() as u64),
                Kind::Dir(_) => (0, 0),
            };
            self.out_bytes -= len;
            self.out_capacity -= cap;
            self.out_entries -= 1;
        }
        self.nodes[id] = None;
        self.free.push(id);
    }

    pub fn filestat_of(&self, id: NodeId) -> Filestat {
        let n = self.node(id);
        let (filetype, size) = match &n.kind {
            Kind::File(d) => (FILETYPE_REGULAR_FILE, d.len() as u64),
            Kind::Dir(_) => (FILETYPE_DIRECTORY, 0),
        };
        Filestat {
            dev: n.mount.dev(),
            ino: id as u64 + 1,
            filetype,
            nlink: 1,
            size,
            atim_ns: n.atim_ns,
            mtim_ns: n.mtim_ns,
            ctim_ns: FIXED_TIME_NS,
        }
    }

    // ----- descriptors -----

    fn desc(&self, fd: u32) -> FsResult<Desc> {
        self.fds
            .get(&fd)
            .copied()
            .ok_or(FsError::Errno(Errno::BADF))
    }

    fn dir_fd(&self, fd: u32) -> FsResult<NodeId> {
        match self.desc(fd)? {
            Desc::Node { node, .. } if self.children(node).is_some() => Ok(node),
            _ => Err(Errno::NOTDIR.into()),
        }
    }

    fn insert_fd(&mut self, desc: Desc) -> FsResult<u32> {
        if self.fds.len() >= MAX_OPEN_FDS {
            return Err(Errno::MFILE.into());
        }
        // The lowest free number, as POSIX does.
        let mut fd = 0u32;
        for k in self.fds.keys() {
            if *k != fd {
                break;
            }
            fd += 1;
        }
        if let Desc::Node { node, .. } = desc {
            self.node_mut(node).open += 1;
        }
        self.fds.insert(fd, desc);
        Ok(fd)
    }

    pub fn close(&mut self, fd: u32) -> FsResult<()> {
        let desc = self.fds.remove(&fd).ok_or(FsError::Errno(Errno::BADF))?;
        if let Desc::Node { node, .. } = desc {
            self.node_mut(node).open -= 1;
            self.release_if_unused(node);
        }
        Ok(())
    }

    pub fn renumber(&mut self, from: u32, to: u32) -> FsResult<()> {
        self.desc(from)?;
        self.desc(to)?;
        if from == to {
            return Ok(());
        }
        self.close(to)?;
        let d = self.fds.remove(&from).ok_or(FsError::Errno(Errno::BADF))?;
        self.fds.insert(to, d);
        Ok(())
    }

    pub fn fdstat(&self, fd: u32) -> FsResult<Fdstat> {
        Ok(match self.desc(fd)? {
            Desc::Stdio(s) => Fdstat {
                filetype: FILETYPE_CHARACTER_DEVICE,
                flags: if s == Stdio::In { 0 } else { FDFLAG_APPEND },
                rights_base: if s == Stdio::In {
                    RIGHT_FD_READ
                } else {
                    RIGHT_FD_WRITE
                },
                rights_inheriting: 0,
            },
            Desc::Node {
                node,
                flags,
                rights,
                inheriting,
                ..
            } => Fdstat {
                filetype: self.filestat_of(node).filetype,
                flags,
                rights_base: rights,
                rights_inheriting: inheriting,
            },
        })
    }

    pub fn set_fdflags(&mut self, fd: u32, new_flags: u16) -> FsResult<()> {
        if new_flags & !FDFLAGS_ALL != 0 {
            return Err(Errno::INVAL.into());
        }
        match self.fds.get_mut(&fd) {
            None => Err(Errno::BADF.into()),
            Some(Desc::Stdio(_)) => Ok(()),
            Some(Desc::Node { flags, .. }) => {
                *flags = new_flags;
                Ok(())
            }
        }
    }

    /// Rights may only be dropped.
    pub fn set_rights(&mut self, fd: u32, base: u64, inh: u64) -> FsResult<()> {
        match self.fds.get_mut(&fd) {
            None => Err(Errno::BADF.into()),
            Some(Desc::Stdio(_)) => Ok(()),
            Some(Desc::Node {
                rights, inheriting, ..
            }) => {
                if base & !*rights != 0 || inh & !*inheriting != 0 {
                    return Err(Errno::NOTCAPABLE.into());
                }
                *rights = base;
                *inheriting = inh;
                Ok(())
            }
        }
    }

    pub fn fd_filestat(&self, fd: u32) -> FsResult<Filestat> {
        match self.desc(fd)? {
            Desc::Stdio(_) => Ok(Filestat {
                dev: 0,
                ino: 0,
                filetype: FILETYPE_CHARACTER_DEVICE,
                nlink: 1,
                size: 0,
                atim_ns: FIXED_TIME_NS,
                mtim_ns: FIXED_TIME_NS,
                ctim_ns: FIXED_TIME_NS,
            }),
            Desc::Node { node, .. } => Ok(self.filestat_of(node)),
        }
    }

    /// A descriptor that may be synced, advised, and so on: any open one.
    pub fn check_open(&self, fd: u32) -> FsResult<()> {
        self.desc(fd).map(|_| ())
    }

    /// A socket operation on `fd`: there are no sockets.
    pub fn sock(&self, fd: u32) -> FsResult<()> {
        self.desc(fd)?;
        Err(Errno::NOTSOCK.into())
    }

    pub fn prestat_name(&self, fd: u32) -> FsResult<&'static str> {
        match self.desc(fd)? {
            Desc::Node {
                preopen: Some(name),
                ..
            } => Ok(name),
            _ => Err(Errno::BADF.into()),
        }
    }

    /// The open regular file behind `fd`, if it was opened with `right`.
    fn file_fd(&self, fd: u32, right: u64) -> FsResult<(NodeId, u64, u16)> {
        match self.desc(fd)? {
            Desc::Stdio(_) => Err(Errno::SPIPE.into()),
            Desc::Node {
                node,
                pos,
                flags,
                rights,
                ..
            } => {
                if self.children(node).is_some() {
                    return Err(Errno::ISDIR.into());
                }
                if rights & right == 0 {
                    return Err(Errno::BADF.into());
                }
                Ok((node, pos, flags))
            }
        }
    }

    fn set_pos(&mut self, fd: u32, new_pos: u64) {
        if let Some(Desc::Node { pos, .. }) = self.fds.get_mut(&fd) {
            *pos = new_pos;
        }
    }

    fn file_data(&self, node: NodeId) -> &[u8] {
        match &self.node(node).kind {
            Kind::File(d) => d,
            Kind::Dir(_) => &[],
        }
    }

    // ----- reading and writing -----

    /// Bytes a read of up to `max` bytes gets: `Some(offset)` for `fd_pread`, else at the
    /// descriptor's position, which then moves. Stdin is empty.
    pub fn read(&mut self, fd: u32, offset: Option<u64>, max: u64) -> FsResult<&[u8]> {
        if let Desc::Stdio(s) = self.desc(fd)? {
            return match (s, offset) {
                (_, Some(_)) => Err(Errno::SPIPE.into()),
                (Stdio::In, None) => Ok(&[]),
                _ => Err(Errno::BADF.into()),
            };
        }
        let (node, pos, _) = self.file_fd(fd, RIGHT_FD_READ)?;
        let at = offset.unwrap_or(pos);
        let len = self.file_data(node).len() as u64;
        let start = at.min(len);
        let end = start.saturating_add(max).min(len);
        if offset.is_none() {
            self.set_pos(fd, end.max(at));
        }
        Ok(&self.file_data(node)[start as usize..end as usize])
    }

    /// Makes room for a write of `len` bytes and returns it to be filled: `Some(offset)` for
    /// `fd_pwrite`, else at the position (the end in append mode), which then moves. The quota
    /// is checked before anything changes.
    pub fn write(&mut self, fd: u32, offset: Option<u64>, len: u64) -> FsResult<&mut [u8]> {
        if let Desc::Stdio(s) = self.desc(fd)? {
            let (buf, stream) = match (s, offset) {
                (_, Some(_)) => return Err(Errno::SPIPE.into()),
                (Stdio::Out, None) => (&mut self.stdout, OutputStream::Stdout),
                (Stdio::Err, None) => (&mut self.stderr, OutputStream::Stderr),
                (Stdio::In, None) => return Err(Errno::BADF.into()),
            };
            let new_len = (buf.len() as u64).saturating_add(len);
            if new_len > self.max_stdio_bytes {
                return Err(FsError::TooLarge(stream));
            }
            // Amortised growth, but never past the bound.
            if new_len > buf.capacity() as u64 {
                let target = (buf.capacity() as u64 * 2).clamp(new_len, self.max_stdio_bytes);
                buf.reserve_exact((target - buf.len() as u64) as usize);
            }
            let start = buf.len();
            buf.resize(new_len as usize, 0);
            return Ok(&mut buf[start..]);
        }
        let (node, pos, flags) = self.file_fd(fd, RIGHT_FD_WRITE)?;
        let cur_len = self.file_data(node).len() as u64;
        let at = match offset {
            Some(o) => o,
            None if flags & FDFLAG_APPEND != 0 => cur_len,
            None => pos,
        };
        let end = at
            .checked_add(len)
            .ok_or(FsError::TooLarge(OutputStream::Out))?;
        self.grow(node, end)?;
        if offset.is_none() {
            self.set_pos(fd, end);
        }
        // A write moves the mtime to "now", which is the fixed time.
        self.node_mut(node).mtim_ns = FIXED_TIME_NS;
        match &mut self.node_mut(node).kind {
            Kind::File(d) => Ok(&mut d[at as usize..end as usize]),
            Kind::Dir(_) => Err(Errno::ISDIR.into()),
        }
    }

    /// Makes a file at least `new_len` long (zero-filled), within the quota.
    fn grow(&mut self, node: NodeId, new_len: u64) -> FsResult<()> {
        let cur = self.file_data(node).len() as u64;
        if new_len <= cur {
            return Ok(());
        }
        self.resize(node, new_len)
    }

    /// Sets a file's length, checking the quota before any byte is allocated.
    fn resize(&mut self, node: NodeId, new_len: u64) -> FsResult<()> {
        if self.node(node).mount != Mount::Out {
            return Err(Errno::ROFS.into());
        }
        let cur = self.file_data(node).len() as u64;
        let total = (self.out_bytes - cur)
            .checked_add(new_len)
            .ok_or(FsError::TooLarge(OutputStream::Out))?;
        if total > self.max_out_bytes {
            return Err(FsError::TooLarge(OutputStream::Out));
        }
        // Amortised growth while the spare capacity of all files stays under the slack, exact
        // growth after: the host then holds at most the quota plus the slack.
        let spare = self.out_capacity - self.out_bytes;
        let mut capacity = self.out_capacity;
        let Some(Kind::File(data)) = self.kind_mut(node) else {
            return Err(Errno::ISDIR.into());
        };
        let old_cap = data.capacity() as u64;
        let others_spare = spare - (old_cap - cur);
        capacity -= old_cap;
        if new_len > old_cap {
            let allowed = GROWTH_SLACK_BYTES.saturating_sub(others_spare);
            let extra = ((old_cap * 2).max(new_len) - new_len).min(allowed);
            data.reserve_exact((new_len + extra - cur) as usize);
        }
        data.resize(new_len as usize, 0);
        if new_len < cur {
            data.shrink_to(new_len as usize);
        }
        capacity += data.capacity() as u64;
        self.out_capacity = capacity;
        self.out_bytes = total;
        Ok(())
    }

    pub fn set_size(&mut self, fd: u32, len: u64) -> FsResult<()> {
        let (node, _, _) = self.file_fd(fd, RIGHT_FD_WRITE)?;
        self.resize(node, len)?;
        self.node_mut(node).mtim_ns = FIXED_TIME_NS;
        Ok(())
    }

    pub fn seek(&mut self, fd: u32, delta: i64, whence: u8) -> FsResult<u64> {
        let (node, pos, _) = match self.desc(fd)? {
            Desc::Stdio(_) => return Err(Errno::SPIPE.into()),
            Desc::Node { node, pos, .. } if self.children(node).is_none() => (node, pos, 0),
            Desc::Node { .. } => return Err(Errno::BADF.into()),
        };
        let base = match whence {
            0 => 0,
            1 => pos,
            2 => self.file_data(node).len() as u64,
            _ => return Err(Errno::INVAL.into()),
        };
        let new = i128::from(base) + i128::from(delta);
        if new < 0 || new > i128::from(i64::MAX) {
            return Err(Errno::INVAL.into());
        }
        self.set_pos(fd, new as u64);
        Ok(new as u64)
    }

    pub fn tell(&self, fd: u32) -> FsResult<u64> {
        match self.desc(fd)? {
            Desc::Stdio(_) => Err(Errno::SPIPE.into()),
            Desc::Node { node, pos, .. } if self.children(node).is_none() => Ok(pos),
            Desc::Node { .. } => Err(Errno::BADF.into()),
        }
    }

    /// Sets the times of the node behind `fd` (`*_NOW` means the fixed time).
    pub fn fd_set_times(&mut self, fd: u32, atim: u64, mtim: u64, fst: u16) -> FsResult<()> {
        match self.desc(fd)? {
            Desc::Stdio(_) => Ok(()),
            Desc::Node { node, .. } => self.set_times(node, atim, mtim, fst),
        }
    }

    fn set_times(&mut self, node: NodeId, atim: u64, mtim: u64, fst: u16) -> FsResult<()> {
        if fst & !0xf != 0
            || (fst & FST_ATIM != 0 && fst & FST_ATIM_NOW != 0)
            || (fst & FST_MTIM != 0 && fst & FST_MTIM_NOW != 0)
        {
            return Err(Errno::INVAL.into());
        }
        let n = self.node_mut(node);
        if n.mount != Mount::Out {
            return Err(Errno::ROFS.into());
        }
        if fst & FST_ATIM != 0 {
            n.atim_ns = atim;
        } else if fst & FST_ATIM_NOW != 0 {
            n.atim_ns = FIXED_TIME_NS;
        }
        if fst & FST_MTIM != 0 {
            n.mtim_ns = mtim;
        } else if fst & FST_MTIM_NOW != 0 {
            n.mtim_ns = FIXED_TIME_NS;
        }
        Ok(())
    }

    /// `fd_readdir`: the serialised entries (`.`, `..`, then children in byte order of name)
    /// from `cookie` on, cut at `max` bytes. An entry's `d_next` is the index of the next one.
    pub fn readdir(&self, fd: u32, cookie: u64, max: usize) -> FsResult<Vec<u8>> {
        let node = match self.desc(fd)? {
            Desc::Node { node, .. } => node,
            Desc::Stdio(_) => return Err(Errno::NOTDIR.into()),
        };
        let Some(children) = self.children(node) else {
            return Err(Errno::NOTDIR.into());
        };
        let parent = self.node(node).parent;
        let dots = [(".", node), ("..", parent)];
        let all = dots
            .iter()
            .map(|(n, id)| (*n, *id))
            .chain(children.iter().map(|(n, id)| (n.as_str(), *id)));
        let mut out = Vec::new();
        let skip = usize::try_from(cookie).unwrap_or(usize::MAX);
        for (i, (name, id)) in all.enumerate().skip(skip) {
            if out.len() >= max {
                break;
            }
            let st = self.filestat_of(id);
            let mut ent = Vec::with_capacity(24 + name.len());
            ent.extend_from_slice(&(i as u64 + 1).to_le_bytes());
            ent.extend_from_slice(&st.ino.to_le_bytes());
            ent.extend_from_slice(&(name.len() as u32).to_le_bytes());
            ent.extend_from_slice(&[st.filetype, 0, 0, 0]);
            ent.extend_from_slice(name.as_bytes());
            out.extend_from_slice(&ent);
        }
        out.truncate(max);
        Ok(out)
    }

    // ----- paths -----

    /// Walks `path` from the directory behind `dir_fd`, never above its mount's root.
    fn resolve(&self, dir_fd: u32, path: &[u8]) -> FsResult<(Resolved, bool)> {
        let base = self.dir_fd(dir_fd)?;
        if path.len() > MAX_PATH_BYTES {
            return Err(Errno::NAMETOOLONG.into());
        }
        let path = std::str::from_utf8(path).map_err(|_| Errno::ILSEQ)?;
        if path.is_empty() {
            return Err(Errno::NOENT.into());
        }
        if path.starts_with('/') {
            return Err(Errno::PERM.into());
        }
        if path.contains('\0') {
            return Err(Errno::INVAL.into());
        }
        let trailing_slash = path.ends_with('/');
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        let mut cur = base;
        let Some((last, walk)) = parts.split_last() else {
            return Err(Errno::NOENT.into());
        };
        for part in walk {
            cur = self.step(cur, part)?;
            if self.children(cur).is_none() {
                return Err(Errno::NOTDIR.into());
            }
        }
        let resolved = match *last {
            "." | ".." => Resolved::Node(self.step(cur, last)?),
            name => {
                if name.len() > MAX_NAME_BYTES {
                    return Err(Errno::NAMETOOLONG.into());
                }
                Resolved::Entry {
                    dir: cur,
                    name: name.to_string(),
                }
            }
        };
        Ok((resolved, trailing_slash))
    }

    fn step(&self, cur: NodeId, part: &str) -> FsResult<NodeId> {
        match part {
            "." => Ok(cur),
            ".." => {
                let n = self.node(cur);
                if n.depth == 0 {
                    // Above a preopen is the host: refused as an escape.
                    Err(Errno::PERM.into())
                } else {
                    Ok(n.parent)
                }
            }
            name => {
                if name.len() > MAX_NAME_BYTES {
                    return Err(Errno::NAMETOOLONG.into());
                }
                let children = self.children(cur).ok_or(FsError::Errno(Errno::NOTDIR))?;
                children
                    .get(name)
                    .copied()
                    .ok_or(FsError::Errno(Errno::NOENT))
            }
        }
    }

    /// The existing node `path` names.
    fn lookup(&self, dir_fd: u32, path: &[u8]) -> FsResult<NodeId> {
        let (r, trailing_slash) = self.resolve(dir_fd, path)?;
        let id = match r {
            Resolved::Node(id) => id,
            Resolved::Entry { dir, name } => self.step(dir, &name)?,
        };
        if trailing_slash && self.children(id).is_none() {
            return Err(Errno::NOTDIR.into());
        }
        Ok(id)
    }

    pub fn path_filestat(&self, dir_fd: u32, path: &[u8]) -> FsResult<Filestat> {
        Ok(self.filestat_of(self.lookup(dir_fd, path)?))
    }

    pub fn path_set_times(
        &mut self,
        dir_fd: u32,
        path: &[u8],
        atim: u64,
        mtim: u64,
        fst: u16,
    ) -> FsResult<()> {
        let id = self.lookup(dir_fd, path)?;
        self.set_times(id, atim, mtim, fst)
    }

    /// `path_readlink`: there are no symbolic links.
    pub fn readlink(&self, dir_fd: u32, path: &[u8]) -> FsResult<()> {
        self.lookup(dir_fd, path)?;
        Err(Errno::INVAL.into())
    }

    /// Counts a new entry of `/out` against its quota.
    fn take_entry(&mut self) -> FsResult<()> {
        if self.out_entries >= self.max_out_entries {
            return Err(FsError::TooLarge(OutputStream::Out));
        }
        self.out_entries += 1;
        Ok(())
    }

    fn link_new(&mut self, dir: NodeId, name: String, kind: Kind) -> FsResult<NodeId> {
        let d = self.node(dir);
        if d.mount != Mount::Out {
            return Err(Errno::ROFS.into());
        }
        let depth = d.depth + 1;
        if matches!(kind, Kind::Dir(_)) && depth > MAX_OUT_DEPTH {
            return Err(Errno::NAMETOOLONG.into());
        }
        self.take_entry()?;
        let id = self.alloc(new_node(kind, Mount::Out, dir, depth));
        if let Some(Kind::Dir(c)) = self.kind_mut(dir) {
            c.insert(name, id);
        }
        Ok(id)
    }

    pub fn open(
        &mut self,
        dir_fd: u32,
        path: &[u8],
        oflags: u16,
        rights: u64,
        inheriting: u64,
        fdflags: u16,
    ) -> FsResult<u32> {
        if oflags & !0xf != 0 || fdflags & !FDFLAGS_ALL != 0 {
            return Err(Errno::INVAL.into());
        }
        let (r, trailing_slash) = self.resolve(dir_fd, path)?;
        let want_dir = oflags & OFLAG_DIRECTORY != 0 || trailing_slash;
        let creat = oflags & OFLAG_CREAT != 0;
        let existing = match &r {
            Resolved::Node(id) => Some(*id),
            Resolved::Entry { dir, name } => self.children(*dir).and_then(|c| c.get(name).copied()),
        };
        let id = match (existing, r) {
            (Some(_), _) if creat && oflags & OFLAG_EXCL != 0 => return Err(Errno::EXIST.into()),
            (Some(id), _) => id,
            (None, Resolved::Entry { dir, name }) if creat => {
                if want_dir {
                    return Err(Errno::ISDIR.into());
                }
                if self.node(dir).mount != Mount::Out {
                    return Err(Errno::ROFS.into());
                }
                self.link_new(dir, name, Kind::File(Vec::new()))?
            }
            _ => return Err(Errno::NOENT.into()),
        };
        let is_dir = self.children(id).is_some();
        let writes = rights & RIGHT_FD_WRITE != 0 || oflags & OFLAG_TRUNC != 0;
        if is_dir {
            if writes {
                return Err(Errno::ISDIR.into());
            }
        } else {
            if want_dir {
                return Err(Errno::NOTDIR.into());
            }
            if writes && self.node(id).mount != Mount::Out {
                return Err(Errno::ROFS.into());
            }
            if oflags & OFLAG_TRUNC != 0 {
                self.resize(id, 0)?;
            }
        }
        self.insert_fd(Desc::Node {
            node: id,
            preopen: None,
            pos: 0,
            flags: fdflags,
            rights: rights & RIGHTS_ALL,
            inheriting: inheriting & RIGHTS_ALL,
        })
    }

    pub fn create_dir(&mut self, dir_fd: u32, path: &[u8]) -> FsResult<()> {
        match self.resolve(dir_fd, path)?.0 {
            Resolved::Node(_) => Err(Errno::EXIST.into()),
            Resolved::Entry { dir, name } => {
                if self.children(dir).is_some_and(|c| c.contains_key(&name)) {
                    return Err(Errno::EXIST.into());
                }
                self.link_new(dir, name, Kind::Dir(BTreeMap::new()))
                    .map(|_| ())
            }
        }
    }

    /// The directory and name of an existing entry, for unlinking and renaming.
    fn existing_entry(&self, dir_fd: u32, path: &[u8]) -> FsResult<(NodeId, String, NodeId)> {
        match self.resolve(dir_fd, path)?.0 {
            // `.` and `..` cannot be removed or renamed.
            Resolved::Node(_) => Err(Errno::INVAL.into()),
            Resolved::Entry { dir, name } => {
                let id = self.step(dir, &name)?;
                Ok((dir, name, id))
            }
        }
    }

    fn unlink_entry(&mut self, dir: NodeId, name: &str) {
        let removed = match self.kind_mut(dir) {
            Some(Kind::Dir(c)) => c.remove(name),
            _ => None,
        };
        if let Some(id) = removed {
            self.node_mut(id).linked = false;
            self.release_if_unused(id);
        }
    }

    pub fn unlink_file(&mut self, dir_fd: u32, path: &[u8]) -> FsResult<()> {
        let (r, trailing_slash) = self.resolve(dir_fd, path)?;
        let Resolved::Entry { dir, name } = r else {
            return Err(Errno::ISDIR.into());
        };
        let id = self.step(dir, &name)?;
        if self.children(id).is_some() {
            return Err(Errno::ISDIR.into());
        }
        if trailing_slash {
            return Err(Errno::NOTDIR.into());
        }
        if self.node(dir).mount != Mount::Out {
            return Err(Errno::ROFS.into());
        }
        self.unlink_entry(dir, &name);
        Ok(())
    }

    pub fn remove_dir(&mut self, dir_fd: u32, path: &[u8]) -> FsResult<()> {
        let (dir, name, id) = self.existing_entry(dir_fd, path)?;
        match self.children(id) {
            None => return Err(Errno::NOTDIR.into()),
            Some(c) if !c.is_empty() => return Err(Errno::NOTEMPTY.into()),
            Some(_) => {}
        }
        if self.node(dir).mount != Mount::Out {
            return Err(Errno::ROFS.into());
        }
        self.unlink_entry(dir, &name);
        Ok(())
    }

    pub fn rename(
        &mut self,
        old_fd: u32,
        old_path: &[u8],
        new_fd: u32,
        new_path: &[u8],
    ) -> FsResult<()> {
        let (old_dir, old_name, id) = self.existing_entry(old_fd, old_path)?;
        let Resolved::Entry {
            dir: new_dir,
            name: new_name,
        } = self.resolve(new_fd, new_path)?.0
        else {
            return Err(Errno::INVAL.into());
        };
        if self.node(old_dir).mount != self.node(new_dir).mount {
            return Err(Errno::XDEV.into());
        }
        if self.node(old_dir).mount != Mount::Out {
            return Err(Errno::ROFS.into());
        }
        let moving_dir = self.children(id).is_some();
        if moving_dir {
            // A directory cannot move into itself or below itself.
            let mut a = new_dir;
            loop {
                if a == id {
                    return Err(Errno::INVAL.into());
                }
                if self.node(a).depth == 0 {
                    break;
                }
                a = self.node(a).parent;
            }
            if self.depth_below(id) + self.node(new_dir).depth + 1 > MAX_OUT_DEPTH {
                return Err(Errno::NAMETOOLONG.into());
            }
        }
        let target = self
            .children(new_dir)
            .and_then(|c| c.get(&new_name).copied());
        if let Some(t) = target {
            if t == id {
                return Ok(());
            }
            match (moving_dir, self.children(t)) {
                (false, Some(_)) => return Err(Errno::ISDIR.into()),
                (true, None) => return Err(Errno::NOTDIR.into()),
                (true, Some(c)) if !c.is_empty() => return Err(Errno::NOTEMPTY.into()),
                _ => {}
            }
            self.unlink_entry(new_dir, &new_name);
        }
        if let Some(Kind::Dir(c)) = self.kind_mut(old_dir) {
            c.remove(&old_name);
        }
        if let Some(Kind::Dir(c)) = self.kind_mut(new_dir) {
            c.insert(new_name, id);
        }
        self.node_mut(id).parent = new_dir;
        self.set_depths(id, self.node(new_dir).depth + 1);
        Ok(())
    }

    /// How many directory levels lie below `id` (0 for a file or an empty directory).
    fn depth_below(&self, id: NodeId) -> usize {
        self.children(id)
            .map(|c| {
                c.values()
                    .filter(|k| self.children(**k).is_some())
                    .map(|k| 1 + self.depth_below(*k))
                    .max()
                    .unwrap_or(0)
            })
            .unwrap_or(0)
    }

    fn set_depths(&mut self, id: NodeId, depth: usize) {
        self.node_mut(id).depth = depth;
        let kids: Vec<NodeId> = self
            .children(id)
            .map(|c| c.values().copied().collect())
            .unwrap_or_default();
        for k in kids {
            self.set_depths(k, depth + 1);
        }
    }

    /// What `/out` holds at the end of a run: its regular files and its directories, each
    /// sorted by path bytes. Takes the files' bytes out of the tree.
    pub fn take_outputs(&mut self) -> (Vec<OutputFile>, Vec<String>) {
        let mut files = Vec::new();
        let mut dirs = Vec::new();
        let mut stack = vec![(OUT_ROOT, String::new())];
        while let Some((dir, prefix)) = stack.pop() {
            let entries: Vec<(String, NodeId)> = self
                .children(dir)
                .map(|c| c.iter().map(|(n, id)| (n.clone(), *id)).collect())
                .unwrap_or_default();
            for (name, id) in entries {
                let path = if prefix.is_empty() {
                    name
                } else {
                    format!("{prefix}/{name}")
                };
                match self.kind_mut(id) {
                    Some(Kind::File(data)) => files.push(OutputFile {
                        path,
                        bytes: std::mem::take(data),
                    }),
                    Some(Kind::Dir(_)) => {
                        dirs.push(path.clone());
                        stack.push((id, path));
                    }
                    None => {}
                }
            }
        }
        files.sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
        dirs.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        (files, dirs)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const RW: u64 = RIGHT_FD_READ | RIGHT_FD_WRITE;

    fn vfs(max_bytes: u64, max_entries: u64) -> Vfs {
        Vfs::new(
            vec![("b".into(), b"bb".to_vec()), ("a".into(), b"a".to_vec())],
            max_bytes,
            max_entries,
            1 << 10,
        )
    }

    fn names(listing: &[u8]) -> Vec<String> {
        let mut out = Vec::new();
        let mut i = 0;
        while i + 24 <= listing.len() {
            let len = u32::from_le_bytes(listing[i + 16..i + 20].try_into().unwrap()) as usize;
            out.push(String::from_utf8(listing[i + 24..i + 24 + len].to_vec()).unwrap());
            i += 24 + len;
        }
        out
    }

    #[test]
    fn a_write_that_would_cross_the_quota_changes_nothing_and_allocates_nothing() {
        let mut v = vfs(1 << 20, 100);
        let fd = v.open(FD_OUT, b"f", OFLAG_CREAT, RW, 0, 0).unwrap();
        v.write(fd, None, 1000).unwrap();
        assert_eq!(
            v.write(fd, None, 2 << 30).unwrap_err(),
            FsError::TooLarge(OutputStream::Out)
        );
        assert_eq!(
            v.write(fd, Some(u64::MAX - 1), 4).unwrap_err(),
            FsError::TooLarge(OutputStream::Out)
        );
        assert_eq!(
            v.set_size(fd, 3 << 30).unwrap_err(),
            FsError::TooLarge(OutputStream::Out)
        );
        assert_eq!(v.out_bytes(), 1000);
        assert!(v.held_bytes() <= (1 << 20) + GROWTH_SLACK_BYTES);
        // Up to the quota exactly is fine.
        v.write(fd, None, (1 << 20) - 1000).unwrap();
        assert_eq!(v.out_bytes(), 1 << 20);
        assert!(v.held_bytes() <= (1 << 20) + GROWTH_SLACK_BYTES);
        assert_eq!(
            v.write(fd, None, 1).unwrap_err(),
            FsError::TooLarge(OutputStream::Out)
        );
    }

    #[test]
    fn many_small_writes_to_many_files_hold_at_most_the_quota_plus_the_slack() {
        let quota = 4 << 20;
        let mut v = vfs(quota, 1000);
        let mut fds = Vec::new();
        for i in 0..64 {
            fds.push(
                v.open(FD_OUT, format!("f{i}").as_bytes(), OFLAG_CREAT, RW, 0, 0)
                    .unwrap(),
            );
        }
        'outer: loop {
            for fd in &fds {
                if v.write(*fd, None, 1000).is_err() {
                    break 'outer;
                }
            }
        }
        assert!(v.out_bytes() <= quota);
        assert!(
            v.held_bytes() <= quota + GROWTH_SLACK_BYTES,
            "{}",
            v.held_bytes()
        );
    }

    #[test]
    fn entries_count_against_the_quota_until_released() {
        let mut v = vfs(1 << 20, 2);
        v.create_dir(FD_OUT, b"d").unwrap();
        let fd = v.open(FD_OUT, b"d/f", OFLAG_CREAT, RW, 0, 0).unwrap();
        assert_eq!(
            v.open(FD_OUT, b"g", OFLAG_CREAT, RW, 0, 0).unwrap_err(),
            FsError::TooLarge(OutputStream::Out)
        );
        v.write(fd, None, 10).unwrap();
        // Unlinked but open: it still counts, as its bytes do.
        v.unlink_file(FD_OUT, b"d/f").unwrap();
        assert_eq!(v.out_bytes(), 10);
        v.close(fd).unwrap();
        assert_eq!(v.out_bytes(), 0);
        v.open(FD_OUT, b"g", OFLAG_CREAT, RW, 0, 0).unwrap();
    }

    #[test]
    fn listings_are_in_byte_order_and_stats_are_fixed() {
        let mut v = vfs(1 << 20, 100);
        for name in ["zeta", "Alpha", "beta", "_"] {
            v.open(FD_OUT, name.as_bytes(), OFLAG_CREAT, RW, 0, 0)
                .unwrap();
        }
        v.create_dir(FD_OUT, b"dir").unwrap();
        let all = v.readdir(FD_OUT, 0, 4096).unwrap();
        assert_eq!(
            names(&all),
            [".", "..", "Alpha", "_", "beta", "dir", "zeta"]
        );
        // Resuming from a cookie continues where the previous entry said.
        let first = v.readdir(FD_OUT, 0, 24 + 1).unwrap();
        let next = u64::from_le_bytes(first[0..8].try_into().unwrap());
        assert_eq!(names(&v.readdir(FD_OUT, next, 4096).unwrap())[0], "..");
        assert_eq!(
            names(&v.readdir(FD_IN, 0, 4096).unwrap()),
            [".", "..", "a", "b"]
        );
        let d = v.path_filestat(FD_OUT, b"dir").unwrap();
        assert_eq!(
            (d.size, d.nlink, d.dev, d.mtim_ns),
            (0, 1, 2, FIXED_TIME_NS)
        );
        // Inputs get their inodes in name order.
        let (a, b) = (
            v.path_filestat(FD_IN, b"a").unwrap(),
            v.path_filestat(FD_IN, b"b").unwrap(),
        );
        assert!(a.ino < b.ino);
        assert_eq!((a.size, b.size), (1, 2));
    }

    #[test]
    fn paths_cannot_leave_their_mount_and_in_is_read_only() {
        let mut v = vfs(1 << 20, 100);
        let e = |r: FsResult<u32>| r.unwrap_err();
        assert_eq!(
            e(v.open(FD_IN, b"../out/x", OFLAG_CREAT, RW, 0, 0)),
            Errno::PERM.into()
        );
        assert_eq!(
            e(v.open(FD_IN, b"/etc/passwd", 0, RIGHT_FD_READ, 0, 0)),
            Errno::PERM.into()
        );
        assert_eq!(e(v.open(FD_IN, b"a", 0, RW, 0, 0)), Errno::ROFS.into());
        assert_eq!(
            e(v.open(FD_IN, b"x", OFLAG_CREAT, RW, 0, 0)),
            Errno::ROFS.into()
        );
        assert_eq!(
            e(v.open(FD_IN, b"missing", 0, RIGHT_FD_READ, 0, 0)),
            Errno::NOENT.into()
        );
        assert_eq!(
            e(v.open(FD_IN, b"a/", 0, RIGHT_FD_READ, 0, 0)),
            Errno::NOTDIR.into()
        );
        assert_eq!(
            v.rename(FD_IN, b"a", FD_OUT, b"a").unwrap_err(),
            Errno::XDEV.into()
        );
        assert_eq!(v.unlink_file(FD_IN, b"a").unwrap_err(), Errno::ROFS.into());
        let fd = v.open(FD_IN, b"b", 0, RIGHT_FD_READ, 0, 0).unwrap();
        assert_eq!(v.read(fd, None, 10).unwrap(), b"bb");
        assert_eq!(v.write(fd, None, 1).unwrap_err(), Errno::BADF.into());
    }

    #[test]
    fn renames_move_whole_subtrees_but_never_into_themselves() {
        let mut v = vfs(1 << 20, 100);
        v.create_dir(FD_OUT, b"a").unwrap();
        v.create_dir(FD_OUT, b"a/b").unwrap();
        let fd = v.open(FD_OUT, b"a/b/f", OFLAG_CREAT, RW, 0, 0).unwrap();
        v.write(fd, None, 3).unwrap().copy_from_slice(b"xyz");
        assert_eq!(
            v.rename(FD_OUT, b"a", FD_OUT, b"a/b/c").unwrap_err(),
            Errno::INVAL.into()
        );
        v.rename(FD_OUT, b"a", FD_OUT, b"z").unwrap();
        let (files, dirs) = v.take_outputs();
        assert_eq!(dirs, ["z", "z/b"]);
        assert_eq!(files.len(), 1);
        assert_eq!(
            (files[0].path.as_str(), &files[0].bytes[..]),
            ("z/b/f", &b"xyz"[..])
        );
    }
}
