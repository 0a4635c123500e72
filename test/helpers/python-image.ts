import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

/**
 * A root filesystem with Debian's python3 and pytest and nothing of this repository's
 * toolchain: the packages extracted by mmdebstrap (no maintainer scripts run), about 85 MB.
 * Made once per machine (about 30 s, from the Debian mirror) and kept in the temp directory.
 */
export function pythonRootfs(): string {
  const dir = path.join(tmpdir(), 'issue-agent-test-images', 'bookworm-python3-pytest');
  const rootfs = path.join(dir, 'rootfs');
  if (existsSync(path.join(rootfs, 'usr/bin/python3'))) return rootfs;
  mkdirSync(dir, { recursive: true });
  const building = path.join(dir, `rootfs.${process.pid}`);
  rmSync(building, { recursive: true, force: true });
  execFileSync(
    'mmdebstrap',
    [
      '--quiet',
      '--variant=extract',
      '--include=dash,coreutils,python3-pytest',
      '--dpkgopt=path-exclude=/usr/share/{doc,man,locale,info}/*',
      'bookworm',
      building,
    ],
    { stdio: 'pipe', timeout: 10 * 60_000 },
  );
  // extract leaves apt's download cache and the /dev nodes it may make: an image has neither.
  rmSync(path.join(building, 'var/cache/apt/archives'), { recursive: true, force: true });
  rmSync(path.join(building, 'dev'), { recursive: true, force: true });
  try {
    renameSync(building, rootfs);
  } catch {
    rmSync(building, { recursive: true, force: true }); // another process made it first
  }
  return rootfs;
}
