/**
 * The files at a repository's root that say what it depends on, for every language the
 * checks are detected for: a change to one makes a new set-up environment and a new install.
 */
const MANIFEST =
  /^(?:package\.json|package-lock\.json|npm-shrinkwrap\.json|yarn\.lock|pnpm-lock\.yaml|\.npmrc|\.nvmrc|requirements[\w.-]*\.txt|constraints[\w.-]*\.txt|pyproject\.toml|poetry\.lock|uv\.lock|Pipfile|Pipfile\.lock|setup\.py|setup\.cfg|\.python-version|go\.mod|go\.sum|Cargo\.toml|Cargo\.lock|rust-toolchain(?:\.toml)?|pom\.xml|build\.gradle(?:\.kts)?|settings\.gradle(?:\.kts)?|gradle\.lockfile)$/;

/** The root's dependency manifests (name → content hash), from the base commit's listing. */
export function dependencyManifests(rootFiles: ReadonlyMap<string, string>): Record<string, string> {
  return Object.fromEntries(
    [...rootFiles].filter(([name]) => MANIFEST.test(name)).sort(([a], [b]) => (a < b ? -1 : 1)),
  );
}
