FROM node:20-slim AS assets
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund

FROM python:3.12-slim
WORKDIR /app
COPY . .
COPY --from=assets /src/node_modules/htmx.org/dist/htmx.min.js server/static/vendor/htmx.min.js
COPY --from=assets /src/node_modules/swagger-ui-dist/swagger-ui-bundle.js /src/node_modules/swagger-ui-dist/swagger-ui.css server/static/vendor/
RUN pip install --no-cache-dir -e .
ENV ASSAY_ENVIRONMENT=production
EXPOSE 8000
CMD ["assay", "serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "2"]
