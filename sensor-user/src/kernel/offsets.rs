//! Kernel-specific offsets, read from the running kernel at load time.
//!
//! Rust eBPF cannot emit CO-RE relocations, so instead of compiling struct layouts in, the loader
//! looks every member it needs up in /sys/kernel/btf/vmlinux (following anonymous structs and
//! unions, where `mm_struct` keeps its fields on recent kernels), and the syscall tracepoint fields
//! in their tracefs `format` files. The result goes to the programs as one global,
//! [`KernelOffsets`]. A kernel where something is missing fails here, naming what is missing,
//! rather than reading garbage later.

use std::path::{Path, PathBuf};

use btf_rs::{Btf, Type};
use sensor_ebpf::{KernelOffsets, capture_flags};

pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

#[derive(Debug, thiserror::Error)]
pub enum OffsetError {
    #[error(
        "cannot read kernel BTF at {path}: {source}; lineage-sensor needs a kernel built with CONFIG_DEBUG_INFO_BTF=y (5.8 or newer)"
    )]
    Btf {
        path: PathBuf,
        source: btf_rs::Error,
    },
    #[error("kernel BTF has no struct {0}")]
    NoStruct(String),
    #[error("kernel BTF: struct {ty} has no member {member}")]
    NoMember { ty: String, member: String },
    #[error("cannot read tracepoint format {path}: {source}")]
    Format {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("tracepoint format {path} has no field {field}")]
    NoField { path: PathBuf, field: String },
    #[error(
        "tracepoint format {path}: field {field} is at offset {offset}, not {expected} as the file \
         probes expect"
    )]
    Layout {
        path: PathBuf,
        field: String,
        offset: u32,
        expected: u32,
    },
    #[error(
        "kernel BTF: struct dentry has d_parent at {d_parent} and d_name at {d_name}, struct qstr \
         len at {len} and name at {name}; the path walk reads d_parent and d_name in one go and \
         needs d_name right after d_parent, with len at 4 and name at 8 (every little-endian \
         kernel since 3.x)"
    )]
    DentryLayout {
        d_parent: u32,
        d_name: u32,
        len: u32,
        name: u32,
    },
}

/// Everything the programs need to know about this kernel.
pub fn kernel_offsets(btf_path: &Path, tracefs: &Path) -> Result<KernelOffsets, OffsetError> {
    let btf = Btf::from_file(btf_path).map_err(|source| OffsetError::Btf {
        path: btf_path.to_owned(),
        source,
    })?;
    let m = |ty: &str, member: &str| member_offset(&btf, ty, member);
    let enter = tracefs.join("events/syscalls/sys_enter_connect/format");
    let exit = tracefs.join("events/syscalls/sys_exit_connect/format");
    let enter_fields = read_format(&enter)?;
    let exit_fields = read_format(&exit)?;
    let field = |fields: &[(String, u32)], path: &Path, name: &str| {
        fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|&(_, offset)| offset)
            .ok_or_else(|| OffsetError::NoField {
                path: path.to_owned(),
                field: name.to_owned(),
            })
    };
    let identity = exe_identity(&btf);
    let mut offsets = KernelOffsets {
        task_real_parent: m("task_struct", "real_parent")?,
        task_tgid: m("task_struct", "tgid")?,
        task_pid: m("task_struct", "pid")?,
        task_start_boottime: m("task_struct", "start_boottime")?,
        task_real_cred: m("task_struct", "real_cred")?,
        task_mm: m("task_struct", "mm")?,
        task_files: m("task_struct", "files")?,
        task_exit_code: m("task_struct", "exit_code")?,
        cred_uid: m("cred", "uid")?,
        cred_gid: m("cred", "gid")?,
        cred_euid: m("cred", "euid")?,
        mm_arg_start: m("mm_struct", "arg_start")?,
        mm_arg_end: m("mm_struct", "arg_end")?,
        binprm_filename: m("linux_binprm", "filename")?,
        files_fdt: m("files_struct", "fdt")?,
        fdtable_max_fds: m("fdtable", "max_fds")?,
        fdtable_fd: m("fdtable", "fd")?,
        file_private_data: m("file", "private_data")?,
        socket_type: m("socket", "type")?,
        tp_connect_fd: field(&enter_fields, &enter, "fd")?,
        tp_connect_addr: field(&enter_fields, &enter, "uservaddr")?,
        tp_connect_addrlen: field(&enter_fields, &enter, "addrlen")?,
        tp_exit_ret: field(&exit_fields, &exit, "ret")?,
        tp_syscall_args: field(&enter_fields, &enter, "fd")?,
        task_fs: m("task_struct", "fs")?,
        fs_pwd: m("fs_struct", "pwd")?,
        path_mnt: m("path", "mnt")?,
        path_dentry: m("path", "dentry")?,
        file_f_path: m("file", "f_path")?,
        dentry_d_parent: m("dentry", "d_parent")?,
        dentry_d_name: m("dentry", "d_name")?,
        qstr_len: m("qstr", "len")?,
        qstr_name: m("qstr", "name")?,
        vfsmount_mnt_root: m("vfsmount", "mnt_root")?,
        mount_mnt: m("mount", "mnt")?,
        mount_mnt_parent: m("mount", "mnt_parent")?,
        mount_mnt_mountpoint: m("mount", "mnt_mountpoint")?,
        capture_flags: 0,
        sk_family: m("sock_common", "skc_family")?,
        sk_dport: m("sock_common", "skc_dport")?,
        sk_num: m("sock_common", "skc_num")?,
        sk_rcv_saddr: m("sock_common", "skc_rcv_saddr")?,
        sk_v6_rcv_saddr: m("sock_common", "skc_v6_rcv_saddr")?,
        sk_protocol: m("sock", "sk_protocol")?,
        sock_sk_err: m("sock", "sk_err")?,
        recent_exec_ms: 0,
        binprm_file: 0,
        file_f_inode: 0,
        inode_i_ino: 0,
        inode_i_nlink: 0,
        inode_i_sb: 0,
        sb_s_dev: 0,
    };
    match identity {
        Ok([file, inode, ino, nlink, sb, dev]) => {
            offsets.binprm_file = file;
            offsets.file_f_inode = inode;
            offsets.inode_i_ino = ino;
            offsets.inode_i_nlink = nlink;
            offsets.inode_i_sb = sb;
            offsets.sb_s_dev = dev;
            offsets.capture_flags |= capture_flags::EXE_IDENTITY;
        }
        // Execs are still reported; only server-written-file-executed loses the executed
        // file's own identity and falls back to names.
        Err(e) => log::warn!("{e}: execs will carry no file identity"),
    }
    check_dentry_layout(&offsets)?;
    Ok(offsets)
}

/// The members the exec probe follows to the executed file's identity: a feature of this
/// kernel's BTF, optional, since execs are worth reporting without it.
fn exe_identity(btf: &Btf) -> Result<[u32; 6], OffsetError> {
    let m = |ty: &str, member: &str| member_offset(btf, ty, member);
    Ok([
        m("linux_binprm", "file")?,
        m("file", "f_inode")?,
        m("inode", "i_ino")?,
        m("inode", "i_nlink")?,
        m("inode", "i_sb")?,
        m("super_block", "s_dev")?,
    ])
}

/// The file probes' path walk reads `d_parent` and `d_name` (hash, len, name pointer) with one
/// helper call per level; that needs this layout.
fn check_dentry_layout(o: &KernelOffsets) -> Result<(), OffsetError> {
    if o.dentry_d_name == o.dentry_d_parent + 8 && o.qstr_len == 4 && o.qstr_name == 8 {
        return Ok(());
    }
    Err(OffsetError::DentryLayout {
        d_parent: o.dentry_d_parent,
        d_name: o.dentry_d_name,
        len: o.qstr_len,
        name: o.qstr_name,
    })
}

/// The file probes read syscall arguments as 8-byte slots after the first one
/// (`KernelOffsets::tp_syscall_args`); this checks that a tracepoint's format agrees.
/// `fields` are the argument names in order.
pub fn check_syscall_layout(
    tracefs: &Path,
    tracepoint: &str,
    fields: &[&str],
    first_arg: u32,
) -> Result<(), OffsetError> {
    let path = tracefs.join(format!("events/syscalls/{tracepoint}/format"));
    let found = read_format(&path)?;
    for (i, name) in fields.iter().enumerate() {
        let at = found
            .iter()
            .find(|(n, _)| n == name)
            .map(|&(_, offset)| offset)
            .ok_or_else(|| OffsetError::NoField {
                path: path.clone(),
                field: (*name).to_owned(),
            })?;
        if at != first_arg + 8 * i as u32 {
            return Err(OffsetError::Layout {
                path: path.clone(),
                field: (*name).to_owned(),
                offset: at,
                expected: first_arg + 8 * i as u32,
            });
        }
    }
    Ok(())
}

/// Byte offset of `member` in `struct ty`, looking through anonymous structs and unions.
pub fn member_offset(btf: &Btf, ty: &str, member: &str) -> Result<u32, OffsetError> {
    let structs = btf
        .resolve_types_by_name(ty)
        .map_err(|_| OffsetError::NoStruct(ty.to_owned()))?;
    // A name can also belong to a forward declaration; the definition is the one with members.
    let definition = structs
        .iter()
        .find_map(|t| match t {
            Type::Struct(s) if !s.members.is_empty() => Some(s),
            _ => None,
        })
        .ok_or_else(|| OffsetError::NoStruct(ty.to_owned()))?;
    find_member(btf, definition, member, 0).ok_or_else(|| OffsetError::NoMember {
        ty: ty.to_owned(),
        member: member.to_owned(),
    })
}

fn find_member(btf: &Btf, st: &btf_rs::Struct, member: &str, base_bits: u32) -> Option<u32> {
    for m in &st.members {
        let name = btf.resolve_name(m).unwrap_or_default();
        let bits = base_bits + m.bit_offset();
        if name == member {
            return Some(bits / 8);
        }
        if name.is_empty() {
            let inner = match btf.resolve_chained_type(m).ok()? {
                Type::Struct(s) | Type::Union(s) => s,
                _ => continue,
            };
            if let Some(found) = find_member(btf, &inner, member, bits) {
                return Some(found);
            }
        }
    }
    None
}

/// `(field name, byte offset)` pairs of a tracepoint `format` file.
fn read_format(path: &Path) -> Result<Vec<(String, u32)>, OffsetError> {
    let text = std::fs::read_to_string(path).map_err(|source| OffsetError::Format {
        path: path.to_owned(),
        source,
    })?;
    Ok(parse_format(&text))
}

/// Parses lines such as `\tfield:struct sockaddr * uservaddr;\toffset:24;\tsize:8;\tsigned:0;`.
pub fn parse_format(text: &str) -> Vec<(String, u32)> {
    text.lines()
        .filter_map(|line| {
            let decl = line.trim().strip_prefix("field:")?.split(';').next()?;
            let name = decl
                .rsplit(|c: char| c.is_whitespace() || c == '*')
                .next()?
                .split('[')
                .next()?;
            let offset = line
                .split(';')
                .find_map(|part| part.trim().strip_prefix("offset:"))?
                .parse()
                .ok()?;
            Some((name.to_owned(), offset))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENTER_CONNECT: &str = "name: sys_enter_connect
ID: 1234
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:int __syscall_nr;\toffset:8;\tsize:4;\tsigned:1;
\tfield:int fd;\toffset:16;\tsize:8;\tsigned:0;
\tfield:struct sockaddr * uservaddr;\toffset:24;\tsize:8;\tsigned:0;
\tfield:int addrlen;\toffset:32;\tsize:8;\tsigned:0;
\tfield:__data_loc char[] parent_comm;\toffset:8;\tsize:4;\tsigned:0;
";

    #[test]
    fn format_fields_and_offsets() {
        let fields = parse_format(ENTER_CONNECT);
        let get = |n: &str| fields.iter().find(|(f, _)| f == n).map(|&(_, o)| o);
        assert_eq!(get("fd"), Some(16));
        assert_eq!(get("uservaddr"), Some(24));
        assert_eq!(get("addrlen"), Some(32));
        assert_eq!(get("__syscall_nr"), Some(8));
        assert_eq!(get("parent_comm"), Some(8));
    }

    /// Reads this machine's own BTF: anonymous-member lookups must agree with what we know of
    /// stable layouts (pid and tgid are adjacent ints in task_struct).
    #[test]
    fn running_kernel_btf_resolves_nested_members() {
        let Ok(btf) = Btf::from_file(VMLINUX_BTF) else {
            panic!("{VMLINUX_BTF} unreadable: the sensor requires BTF");
        };
        let pid = member_offset(&btf, "task_struct", "pid").expect("pid");
        let tgid = member_offset(&btf, "task_struct", "tgid").expect("tgid");
        assert_eq!(tgid, pid + 4);
        let start = member_offset(&btf, "mm_struct", "arg_start").expect("arg_start");
        let end = member_offset(&btf, "mm_struct", "arg_end").expect("arg_end");
        assert_eq!(end, start + 8);
        assert!(
            exe_identity(&btf).is_ok(),
            "this kernel has the exec identity members"
        );
        assert!(matches!(
            member_offset(&btf, "task_struct", "no_such_member"),
            Err(OffsetError::NoMember { .. })
        ));
    }

    /// The path walk's one-read layout holds on this kernel, and a kernel without it is refused
    /// with the offsets named rather than walked wrongly.
    #[test]
    fn dentry_layout_is_checked() {
        let Ok(btf) = Btf::from_file(VMLINUX_BTF) else {
            panic!("{VMLINUX_BTF} unreadable: the sensor requires BTF");
        };
        let m = |ty, member| member_offset(&btf, ty, member).expect("member");
        // SAFETY: plain integers; all-zero is a valid value.
        let mut offsets: KernelOffsets = unsafe { std::mem::zeroed() };
        offsets.dentry_d_parent = m("dentry", "d_parent");
        offsets.dentry_d_name = m("dentry", "d_name");
        offsets.qstr_len = m("qstr", "len");
        offsets.qstr_name = m("qstr", "name");
        check_dentry_layout(&offsets).expect("this kernel's layout");
        offsets.dentry_d_name += 8;
        let err = check_dentry_layout(&offsets).expect_err("d_name moved");
        assert!(err.to_string().contains("d_name at"), "{err}");
    }
}
