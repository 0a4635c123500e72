import { describe, expect, it } from 'vitest';
import { environmentOf, fromDevcontainer } from './environment.js';
import { parseRepoConfig, RepoConfigError } from './repo-config.js';

const DC = '.devcontainer/devcontainer.json';
const reader = (files: Record<string, string>) => async (p: string) => files[p];

describe('the environment a repository names', () => {
  it('takes environment: from .github/agent.yml over a devcontainer, a single setup command as a list of one', async () => {
    const config = parseRepoConfig(
      'environment:\n  image: python:3.12-bookworm\n  setup: pip install -r requirements-dev.txt\n',
    );
    expect(await environmentOf(config, reader({ [DC]: '{"image": "node:22"}' }))).toEqual({
      image: 'python:3.12-bookworm',
      setup: ['pip install -r requirements-dev.txt'],
      from: '.github/agent.yml',
      ignored: [],
    });
    const listed = parseRepoConfig(
      'environment:\n  image: golang:1.23\n  setup: [go mod download, go install gotest.tools/gotestsum@v1]\n',
    );
    expect((await environmentOf(listed, reader({})))?.valueOf()).toMatchObject({
      setup: ['go mod download', 'go install gotest.tools/gotestsum@v1'],
    });
  });

  it("reads the devcontainer's image and create commands in the spec's order, in either place", async () => {
    const text = `{
      // comments and trailing commas, as editors write them
      "image": "mcr.microsoft.com/devcontainers/python:3.12",
      "postCreateCommand": "pip install -e \${containerWorkspaceFolder}",
      "onCreateCommand": ["pip", "install", "-r", "requirements dev.txt"],
      "updateContentCommand": { "deps": "make deps", "tools": ["go", "install", "x@v1"] },
      "features": { "ghcr.io/devcontainers/features/github-cli:1": {} },
      "postStartCommand": "make serve",
      "initializeCommand": "echo on the host",
    }`;
    expect(await environmentOf({}, reader({ '.devcontainer.json': text }))).toEqual({
      image: 'mcr.microsoft.com/devcontainers/python:3.12',
      setup: ["pip install -r 'requirements dev.txt'", 'make deps', 'go install x@v1', 'pip install -e .'],
      from: '.devcontainer.json',
      ignored: ['features', 'initializeCommand', 'postStartCommand'],
    });
  });

  it('says what to do instead when the devcontainer builds its image, uses Compose, or cannot be read', () => {
    const built = fromDevcontainer(DC, '{ "build": { "dockerfile": "Dockerfile" } }');
    expect(built).toEqual({
      from: DC,
      problem: expect.stringContaining('builds its image from a Dockerfile, which this app does not build'),
    });
    expect('problem' in built && built.problem).toContain('`environment: image:` in .github/agent.yml');
    expect(fromDevcontainer(DC, '{ "dockerComposeFile": "compose.yml", "service": "app" }')).toMatchObject({
      problem: expect.stringContaining('Docker Compose'),
    });
    expect(fromDevcontainer(DC, '{\n  "image": "node:22",\n  "x": }')).toEqual({
      from: DC,
      problem: 'it is not valid JSON with comments (ValueExpected on line 3)',
    });
    expect(fromDevcontainer(DC, '{ "name": "no image" }')).toMatchObject({
      problem: expect.stringContaining('names no `image`'),
    });
    // The image is shown in comments: a text that is not a reference never gets that far.
    expect(fromDevcontainer(DC, '{ "image": "node:22 <img src=x> **approved**" }')).toEqual({
      from: DC,
      problem:
        'its `image` is not an image reference (expected [registry/]name[:tag][@sha256:digest], lower-case name, e.g. python:3.12-bookworm)',
    });
    // The bounds of .github/agent.yml's setup: 20 commands of up to 1,000 characters.
    const many = JSON.stringify({
      image: 'node:22',
      postCreateCommand: Object.fromEntries([...Array(21).keys()].map((i) => [`c${i}`, 'true'])),
    });
    expect(fromDevcontainer(DC, many)).toMatchObject({
      problem: 'its create commands are 21 commands; at most 20 run',
    });
    const long = JSON.stringify({ image: 'node:22', onCreateCommand: `echo ${'x'.repeat(1000)}` });
    expect(fromDevcontainer(DC, long)).toMatchObject({
      problem: 'a create command is 1005 characters long; at most 1000',
    });
    expect(fromDevcontainer(DC, '{ "image": "node:22", "postCreateCommand": 3 }')).toMatchObject({
      problem: 'its `postCreateCommand` is neither a string, a list nor an object of them',
    });
  });

  it('is the worker’s own system when the repository names none', async () => {
    expect(await environmentOf({}, reader({}))).toBeUndefined();
  });

  it('refuses a malformed image reference in the config, saying what one looks like', () => {
    const err = (() => {
      try {
        parseRepoConfig('environment:\n  image: Python 3.12\n');
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(RepoConfigError);
    expect((err as RepoConfigError).problems[0]).toMatchObject({
      line: 2,
      field: 'environment.image',
      problem:
        '"Python 3.12": is not an image reference (expected [registry/]name[:tag][@sha256:digest], lower-case name, e.g. python:3.12-bookworm)',
    });
    expect(() => parseRepoConfig('environment:\n  setup: make\n')).toThrow(RepoConfigError);
  });
});
