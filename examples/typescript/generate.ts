// The model page's request from TypeScript, typed by generated_client_ts/schema.d.ts (make client)
// and sent with openapi-fetch. `make test` type-checks it and runs it against the mock.
import createClient from "openapi-fetch";
import type { components, paths } from "../../generated_client_ts/schema";

type GenerateRequest = components["schemas"]["GenerateRequest"];

const baseUrl = process.env.IMAGEAPI_URL ?? "http://127.0.0.1:8000";
const apiKey = process.env.IMAGEAPI_KEY ?? "sk_test_basic_0123456789abcdef";

async function main(): Promise<void> {
  const client = createClient<paths>({
    baseUrl,
    headers: { Authorization: `Bearer ${apiKey}` },
  });
  const body: GenerateRequest = {
    prompt: "a cinematic mountain landscape at sunrise",
    model: "sdxl-lightning",
    width: 1024,
    height: 1024,
    num_inference_steps: 8,
  };
  const { data, error, response } = await client.POST("/api/v1/generate", { body });
  if (error) {
    // A typed RFC 9457 problem: error.code is one of the codes the spec documents.
    console.log(JSON.stringify({ status: response.status, code: error.code, detail: error.detail }));
    process.exitCode = 1;
    return;
  }
  const [image] = data.images;
  console.log(
    JSON.stringify({
      model: data.model,
      num_inference_steps: data.num_inference_steps,
      seed: data.seed,
      media_type: image.media_type,
      data_url_prefix: image.data_url.slice(0, 22),
    }),
  );
}

main();
