"""Serve a model folder the way SageMaker's Hugging Face inference container does, and answer a list of requests.

Runs with the Python of a venv holding the container's own serving stack (sagemaker-huggingface-inference-toolkit,
multi-model-server, the inference image's transformers): tests/test_inference_container.py starts it with
SFT_HFI_PYTHON. MMS's own model loader loads the toolkit's HuggingFaceHandlerService, which finds the model folder's
code/inference.py, and MMS's worker Service answers each request as the container's worker does (its binary
response is decoded here).

    python hfi_serve.py MODEL_DIR REQUESTS_JSON   # [{"body", "content_type", "accept"}] -> prints JSON answers
"""

import json
import struct
import sys


def decode(message):
    """MMS's predict response (mms/protocol/otf_message_handler.py) for one request."""
    offset = 0

    def number():
        nonlocal offset
        (value,) = struct.unpack_from("!i", message, offset)
        offset += 4
        return value

    def chunk():
        nonlocal offset
        size = number()
        value = bytes(message[offset:offset + size])
        offset += size
        return value

    code, text = number(), chunk().decode()
    chunk()  # request id
    content_type, status = chunk().decode(), number()
    chunk()  # reason phrase
    for _ in range(number()):
        chunk(), chunk()  # response headers
    body = chunk().decode()
    return {"code": code, "message": text, "status": status, "content_type": content_type, "body": body}


def main(model_dir, requests_path):
    import transformers
    from mms.model_loader import MmsModelLoader

    service = MmsModelLoader().load("model", model_dir, "sagemaker_huggingface_inference_toolkit.handler_service",
                                    None, 1)
    answers = []
    with open(requests_path) as fh:
        requests = json.load(fh)
    for i, request in enumerate(requests):
        headers = [{"name": b"Content-Type", "value": request["content_type"].encode()}]
        if request.get("accept"):
            headers.append({"name": b"Accept", "value": request["accept"].encode()})
        batch = [{"requestId": f"r{i}".encode(), "headers": headers,
                  "parameters": [{"name": "body", "contentType": request["content_type"],
                                  "value": request["body"].encode()}]}]
        answers.append(decode(service.predict(batch)))
    print(json.dumps({"transformers": transformers.__version__, "answers": answers}))


if __name__ == "__main__":
    main(*sys.argv[1:3])
