import { describe, expect, it } from 'vitest';
import { bwrapArgv, type HostFacts, type SandboxPlan } from './bwrap-argv.js';

// The pure argument builder: a made-up host and plan in, the exact argv out. Nothing here
// touches the file system; bwrap.test.ts runs the real argv in a real sandbox.

const GiB = 1024 ** 3;
const WT = '/data/work/42';
// hostUidFor(WT): 0x70000000 + sha256(WT)[0..4] mod 2^20.
const WT_HOST_UID = '1879818918';
const ETC = '/tmp/issue-agent-sandbox-etc-0';
const PORTAL = '/tmp/issue-agent-portal-0';
const SOCKET = '/tmp/issue-agent-egress-x1/egress.sock';

const SETUP_SCRIPT = [
  'set -eu',
  'mnt=$1; portal=$2; nprocs=$3; nbinds=$4; shift 4',
  'while [ "$nprocs" -gt 0 ]; do echo $$ > "$1"; shift; nprocs=$((nprocs - 1)); done',
  'if [ "$nbinds" -gt 0 ]; then "$mnt" -t tmpfs -o mode=0755,size=1m,nosuid,nodev issue-agent-portal "$portal"; fi',
  'i=0',
  'while [ "$i" -lt "$nbinds" ]; do',
  '  if [ -d "$1" ]; then mkdir "$portal/$i"; else : > "$portal/$i"; fi',
  '  "$mnt" --bind "$1" "$portal/$i"',
  '  shift; i=$((i + 1))',
  'done',
  'exec "$@"',
].join('\n');

const FORWARDER_WRAPPER = [
  '"$1" "$2" /run/issue-agent/egress.sock 3128 /tmp/.issue-agent-egress-ready </dev/null &',
  // The wait runs in the forwarder's node: an image may have no sleep.
  `"$1" -e 'const fs=require("node:fs"),p=process.argv[1],t=Date.now();(function w(){if(fs.existsSync(p))return;if(Date.now()-t>10000)process.exit(1);setTimeout(w,10)})()' /tmp/.issue-agent-egress-ready || { echo "issue-agent: the install egress forwarder did not start" >&2; exit 125; }`,
  'exec /bin/sh -c "$3"',
].join('\n');

function plan(over: Partial<SandboxPlan> = {}): SandboxPlan {
  return {
    tools: { bwrap: '/usr/bin/bwrap', prlimit: '/usr/bin/prlimit' },
    mode: 'self',
    workTree: WT,
    cwd: WT,
    command: 'npm test',
    network: 'none',
    env: { PATH: '/usr/bin:/bin', HOME: '/tmp/home' },
    readOnlyPaths: [],
    limits: {
      maxProcesses: 1024,
      maxMemoryBytes: 8 * GiB,
      maxAddressSpaceBytes: 16 * GiB,
      maxFileBytes: GiB,
      maxCpuSeconds: 121,
      maxWorkTreeBytes: 10 * GiB,
    },
    ...over,
  };
}

function host(over: Partial<HostFacts> = {}): HostFacts {
  return {
    forbiddenRoots: ['/', '/root', '/srv/issue-agent', '/home/agent'],
    systemDirs: [
      { path: '/bin', kind: 'symlink', target: 'usr/bin' },
      { path: '/lib', kind: 'symlink', target: 'usr/lib' },
      { path: '/lib64', kind: 'directory' },
    ],
    etcDir: ETC,
    nodePrefix: '/usr',
    nodeBinary: '/usr/bin/node',
    readOnlyPaths: [],
    dotGit: 'absent',
    ...over,
  };
}

const PRLIMIT = [
  '/usr/bin/prlimit',
  '--nproc=1024',
  '--cpu=121:126',
  '--as=17179869184',
  '--fsize=1073741824',
  '--core=0',
  '--',
];
const BWRAP = [
  '/usr/bin/bwrap',
  '--unshare-all',
  '--unshare-user',
  '--disable-userns',
  '--die-with-parent',
  '--new-session',
  '--uid',
  '1000',
  '--gid',
  '1000',
  '--hostname',
  'sandbox',
  '--cap-drop',
  'ALL',
  '--clearenv',
];
const ENV = ['--setenv', 'PATH', '/usr/bin:/bin', '--setenv', 'HOME', '/tmp/home'];
const SYSTEM = [
  '--ro-bind',
  '/usr',
  '/usr',
  '--symlink',
  'usr/bin',
  '/bin',
  '--symlink',
  'usr/lib',
  '/lib',
  '--ro-bind',
  '/lib64',
  '/lib64',
  '--ro-bind-try',
  '/etc/resolv.conf',
  '/etc/resolv.conf',
  '--ro-bind-try',
  '/etc/hosts',
  '/etc/hosts',
  '--ro-bind-try',
  '/etc/nsswitch.conf',
  '/etc/nsswitch.conf',
  '--ro-bind-try',
  '/etc/ssl/certs',
  '/etc/ssl/certs',
  '--ro-bind-try',
  '/etc/ssl/openssl.cnf',
  '/etc/ssl/openssl.cnf',
  '--ro-bind-try',
  '/etc/ca-certificates',
  '/etc/ca-certificates',
  '--ro-bind-try',
  '/etc/alternatives',
  '/etc/alternatives',
  '--ro-bind-try',
  '/etc/ld.so.cache',
  '/etc/ld.so.cache',
  '--ro-bind-try',
  '/etc/localtime',
  '/etc/localtime',
  '--ro-bind',
  `${ETC}/passwd`,
  '/etc/passwd',
  '--ro-bind',
  `${ETC}/group`,
  '/etc/group',
  '--ro-bind',
  `${ETC}/gitconfig`,
  '/etc/gitconfig',
];
const PROC_DEV_TMP = [
  '--proc',
  '/proc',
  '--dev',
  '/dev',
  '--perms',
  '1777',
  '--size',
  '67108864',
  '--tmpfs',
  '/dev/shm',
  '--remount-ro',
  '/dev',
  '--size',
  '2147483648',
  '--tmpfs',
  '/tmp',
  '--dir',
  '/tmp/home',
];

describe('bwrapArgv', () => {
  it('a plain run: limits, namespaces without network, the system read-only, the work tree read-write', () => {
    expect(bwrapArgv(plan(), host())).toEqual([
      ...PRLIMIT,
      ...BWRAP,
      ...ENV,
      ...SYSTEM,
      ...PROC_DEV_TMP,
      '--bind',
      WT,
      WT,
      '--remount-ro',
      '/',
      '--chdir',
      WT,
      '--',
      '/bin/sh',
      '-c',
      'npm test',
    ]);
  });

  it('the install egress: no shared network, the proxy socket and forwarder bound, the command behind it', () => {
    const argv = bwrapArgv(
      plan({ network: 'registries', egressSocket: SOCKET, command: 'npm ci', cwd: `${WT}/app` }),
      host(),
    );
    expect(argv).toEqual([
      ...PRLIMIT,
      ...BWRAP,
      ...ENV,
      ...SYSTEM,
      ...PROC_DEV_TMP,
      '--bind',
      WT,
      WT,
      '--bind',
      SOCKET,
      '/run/issue-agent/egress.sock',
      '--ro-bind',
      `${ETC}/egress-forward.cjs`,
      '/run/issue-agent/egress-forward.cjs',
      '--remount-ro',
      '/',
      '--chdir',
      `${WT}/app`,
      '--',
      '/bin/sh',
      '-c',
      FORWARDER_WRAPPER,
      'sandbox-egress',
      '/usr/bin/node',
      '/run/issue-agent/egress-forward.cjs',
      'npm ci',
    ]);
  });

  it("the host's full network: --share-net, and an egress socket is ignored", () => {
    expect(bwrapArgv(plan({ network: 'full', egressSocket: SOCKET }), host())).toEqual([
      ...PRLIMIT,
      ...BWRAP.slice(0, 4),
      '--share-net',
      ...BWRAP.slice(4),
      ...ENV,
      ...SYSTEM,
      ...PROC_DEV_TMP,
      '--bind',
      WT,
      WT,
      '--remount-ro',
      '/',
      '--chdir',
      WT,
      '--',
      '/bin/sh',
      '-c',
      'npm test',
    ]);
  });

  it('read-only paths bound at their real paths; a node outside /usr bound; an app under /usr hidden', () => {
    const argv = bwrapArgv(
      plan({ readOnlyPaths: ['/data/mirrors/current', '/data/notes.txt'] }),
      host({
        forbiddenRoots: ['/', '/root', '/usr/local/lib/node_modules/issue-agent', '/home/agent'],
        nodePrefix: '/opt/node-v20',
        nodeBinary: '/opt/node-v20/bin/node',
        readOnlyPaths: [
          { real: '/data/mirrors/o/r.git', isDirectory: true, mode: 0o40700 },
          { real: '/data/notes.txt', isDirectory: false, mode: 0o100600 },
        ],
      }),
    );
    expect(argv).toEqual([
      ...PRLIMIT,
      ...BWRAP,
      ...ENV,
      ...SYSTEM,
      '--ro-bind',
      '/opt/node-v20',
      '/opt/node-v20',
      '--tmpfs',
      '/usr/local/lib/node_modules/issue-agent',
      ...PROC_DEV_TMP,
      '--bind',
      WT,
      WT,
      '--ro-bind',
      '/data/mirrors/o/r.git',
      '/data/mirrors/o/r.git',
      '--ro-bind',
      '/data/notes.txt',
      '/data/notes.txt',
      '--remount-ro',
      '/',
      '--chdir',
      WT,
      '--',
      '/bin/sh',
      '-c',
      'npm test',
    ]);
  });

  it('a work tree whose .git is a directory (or a gitlink file): .git bound read-only over the tree', () => {
    const expected = [
      ...PRLIMIT,
      ...BWRAP,
      ...ENV,
      ...SYSTEM,
      ...PROC_DEV_TMP,
      '--bind',
      WT,
      WT,
      '--ro-bind',
      `${WT}/.git`,
      `${WT}/.git`,
      '--remount-ro',
      '/',
      '--chdir',
      WT,
      '--',
      '/bin/sh',
      '-c',
      'npm test',
    ];
    expect(bwrapArgv(plan(), host({ dotGit: 'directory' }))).toEqual(expected);
    expect(bwrapArgv(plan(), host({ dotGit: 'file' }))).toEqual(expected);
  });

  it('host-uid mode: a private mount namespace, cgroups joined, binds through the portal, then setpriv', () => {
    const argv = bwrapArgv(
      plan({
        tools: {
          bwrap: '/usr/bin/bwrap',
          prlimit: '/usr/bin/prlimit',
          setpriv: '/usr/bin/setpriv',
          unshare: '/usr/bin/unshare',
          mount: '/usr/bin/mount',
        },
        mode: 'host-uid',
        cwd: `${WT}/src`,
        readOnlyPaths: ['/data/mirrors/o/r.git'],
        cgroupProcs: ['/sys/fs/cgroup/ia/run-1/cgroup.procs'],
        cgroupHasPids: true,
      }),
      host({
        portalDir: PORTAL,
        dotGit: 'directory',
        readOnlyPaths: [{ real: '/data/mirrors/o/r.git', isDirectory: true, mode: 0o40755 }],
      }),
    );
    expect(argv).toEqual([
      '/usr/bin/prlimit',
      '--nproc=1040',
      '--cpu=121:126',
      '--as=17179869184',
      '--fsize=1073741824',
      '--core=0',
      '--',
      '/usr/bin/unshare',
      '--mount',
      '--',
      '/bin/sh',
      '-c',
      SETUP_SCRIPT,
      'sandbox-setup',
      '/usr/bin/mount',
      PORTAL,
      '1',
      '2',
      '/sys/fs/cgroup/ia/run-1/cgroup.procs',
      WT,
      '/data/mirrors/o/r.git',
      '/usr/bin/setpriv',
      `--reuid=${WT_HOST_UID}`,
      `--regid=${WT_HOST_UID}`,
      '--clear-groups',
      '--inh-caps=-all',
      '--bounding-set=-all',
      '--no-new-privs',
      '--',
      ...BWRAP,
      ...ENV,
      ...SYSTEM,
      ...PROC_DEV_TMP,
      '--bind',
      `${PORTAL}/0`,
      WT,
      '--ro-bind',
      `${PORTAL}/0/.git`,
      `${WT}/.git`,
      '--ro-bind',
      `${PORTAL}/1`,
      '/data/mirrors/o/r.git',
      '--remount-ro',
      '/',
      '--chdir',
      `${WT}/src`,
      '--',
      '/bin/sh',
      '-c',
      'npm test',
    ]);
  });

  describe('on an image root', () => {
    const ROOTFS = '/data/environments/images/sha256-ab/rootfs';
    const imageHost = (over: Partial<HostFacts> = {}) =>
      host({
        systemDirs: [
          { path: '/bin', kind: 'symlink', target: 'usr/bin' },
          { path: '/etc', kind: 'directory', source: `${ROOTFS}/etc` },
          { path: '/usr', kind: 'directory', source: `${ROOTFS}/usr` },
          { path: '/var', kind: 'directory', source: `${ROOTFS}/var` },
        ],
        imageEtc: ['passwd'],
        ...over,
      });
    const IMAGE_SYSTEM = [
      '--symlink',
      'usr/bin',
      '/bin',
      '--ro-bind',
      `${ROOTFS}/etc`,
      '/etc',
      '--ro-bind',
      `${ROOTFS}/usr`,
      '/usr',
      '--ro-bind',
      `${ROOTFS}/var`,
      '/var',
      '--ro-bind',
      `${ETC}/passwd`,
      '/etc/passwd',
      '--ro-bind',
      `${ETC}/gitconfig`,
      '/run/issue-agent/gitconfig',
      '--setenv',
      'GIT_CONFIG_SYSTEM',
      '/run/issue-agent/gitconfig',
    ];

    it("binds the image's entries instead of the host's system, and no host /etc file", () => {
      expect(bwrapArgv(plan({ root: { rootfs: ROOTFS } }), imageHost())).toEqual([
        ...PRLIMIT,
        ...BWRAP,
        ...ENV,
        ...IMAGE_SYSTEM,
        ...PROC_DEV_TMP,
        '--bind',
        WT,
        WT,
        '--remount-ro',
        '/',
        '--chdir',
        WT,
        '--',
        '/bin/sh',
        '-c',
        'npm test',
      ]);
    });

    it("binds the image's directories read-write for an environment's setup, and the generated files still read-only", () => {
      const writable = IMAGE_SYSTEM.map((a, i) =>
        a === '--ro-bind' && IMAGE_SYSTEM[i + 1]!.startsWith(ROOTFS) ? '--bind' : a,
      );
      expect(writable.filter((a) => a === '--bind')).toHaveLength(3);
      expect(bwrapArgv(plan({ root: { rootfs: ROOTFS, writable: true } }), imageHost())).toEqual([
        ...PRLIMIT,
        ...BWRAP,
        ...ENV,
        ...writable,
        ...PROC_DEV_TMP,
        '--bind',
        WT,
        WT,
        '--remount-ro',
        '/',
        '--chdir',
        WT,
        '--',
        '/bin/sh',
        '-c',
        'npm test',
      ]);
    });

    it("runs the egress forwarder on the host's node through the host's loader", () => {
      const argv = bwrapArgv(
        plan({ root: { rootfs: ROOTFS }, network: 'registries', egressSocket: SOCKET, command: 'pip install .' }),
        imageHost({
          hostRuntime: { loader: '/lib64/ld-linux-x86-64.so.2', libs: ['/lib/x86_64-linux-gnu/libstdc++.so.6'] },
        }),
      );
      expect(argv).toEqual([
        ...PRLIMIT,
        ...BWRAP,
        ...ENV,
        ...IMAGE_SYSTEM,
        ...PROC_DEV_TMP,
        '--bind',
        WT,
        WT,
        '--bind',
        SOCKET,
        '/run/issue-agent/egress.sock',
        '--ro-bind',
        `${ETC}/egress-forward.cjs`,
        '/run/issue-agent/egress-forward.cjs',
        '--ro-bind',
        '/lib64/ld-linux-x86-64.so.2',
        '/run/issue-agent/host/ld.so',
        '--ro-bind',
        '/lib/x86_64-linux-gnu/libstdc++.so.6',
        '/run/issue-agent/host/lib/libstdc++.so.6',
        '--ro-bind',
        '/usr/bin/node',
        '/run/issue-agent/host/node',
        '--ro-bind',
        `${ETC}/node-launcher.sh`,
        '/run/issue-agent/node',
        '--remount-ro',
        '/',
        '--chdir',
        WT,
        '--',
        '/bin/sh',
        '-c',
        FORWARDER_WRAPPER,
        'sandbox-egress',
        '/run/issue-agent/node',
        '/run/issue-agent/egress-forward.cjs',
        'pip install .',
      ]);
    });

    it("in host-uid mode reaches the image's entries through the portal, after the work tree", () => {
      const argv = bwrapArgv(
        plan({
          root: { rootfs: ROOTFS },
          mode: 'host-uid',
          tools: { ...plan().tools, setpriv: '/usr/bin/setpriv', unshare: '/usr/bin/unshare', mount: '/usr/bin/mount' },
        }),
        imageHost({ portalDir: PORTAL }),
      );
      const setup = argv.indexOf('sandbox-setup');
      // The sources the setup script binds into the portal: the work tree, then the rootfs.
      expect(argv.slice(setup + 1, setup + 7)).toEqual(['/usr/bin/mount', PORTAL, '0', '2', WT, ROOTFS]);
      const bound = (dest: string) => argv[argv.lastIndexOf(dest) - 1];
      expect([bound('/etc'), bound('/usr'), bound('/var')]).toEqual([
        `${PORTAL}/1/etc`,
        `${PORTAL}/1/usr`,
        `${PORTAL}/1/var`,
      ]);
      const tree = argv.indexOf('--bind');
      expect(argv.slice(tree, tree + 3)).toEqual(['--bind', `${PORTAL}/0`, WT]);
    });

    it('refuses a work tree inside a directory the image has: a read-only bind takes no mount point', () => {
      expect(() =>
        bwrapArgv(
          plan({ root: { rootfs: ROOTFS }, workTree: '/var/lib/agent/work/1', cwd: '/var/lib/agent/work/1' }),
          imageHost(),
        ),
      ).toThrow(/the image has its own \/var, which holds \/var\/lib\/agent\/work\/1/);
      expect(() => bwrapArgv(plan({ root: { rootfs: '/' } }), imageHost())).toThrow(
        /refusing to bind the image's root \//,
      );
    });
  });

  it('refuses a work tree whose .git is a symlink: bwrap would bind its target', () => {
    expect(() => bwrapArgv(plan(), host({ dotGit: 'symlink' }))).toThrow(
      'refusing to run: /data/work/42/.git is a symlink (bwrap would bind its target)',
    );
  });

  it('refuses forbidden binds, unreadable read-only paths as a host uid, and registries without the proxy', () => {
    expect(() => bwrapArgv(plan({ workTree: '/srv' }), host())).toThrow(
      'refusing to bind the work tree /srv into the sandbox: it is or contains /srv/issue-agent',
    );
    expect(() =>
      bwrapArgv(
        plan({ readOnlyPaths: ['/home'] }),
        host({ readOnlyPaths: [{ real: '/home', isDirectory: true, mode: 0o40755 }] }),
      ),
    ).toThrow('refusing to bind read-only path /home into the sandbox: it is or contains /home/agent');
    expect(() =>
      bwrapArgv(
        plan({
          mode: 'host-uid',
          tools: { bwrap: 'b', prlimit: 'p', setpriv: 's', unshare: 'u', mount: 'm' },
          readOnlyPaths: ['/data/private'],
        }),
        host({ portalDir: PORTAL, readOnlyPaths: [{ real: '/data/private', isDirectory: true, mode: 0o40750 }] }),
      ),
    ).toThrow(
      'the sandbox runs as an unprivileged uid and cannot read /data/private (mode 750); make it readable by others (chmod o+rX) to bind it',
    );
    expect(() => bwrapArgv(plan({ network: 'registries' }), host())).toThrow(
      'internal: network "registries" without the egress proxy\'s socket',
    );
  });
});
